package tenantctx_test

import (
	"context"
	"fmt"

	"github.com/tenantsql/tenantsql/tenantctx"
)

func Example() {
	ctx := tenantctx.WithTenant(context.Background(), "tenant-1.test.com")

	id, ok := tenantctx.TenantFrom(ctx)
	fmt.Println(id, ok)

	_, ok = tenantctx.TenantFrom(context.Background())
	fmt.Println(ok)
	// Output:
	// tenant-1.test.com true
	// false
}
