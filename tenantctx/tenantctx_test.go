package tenantctx

import (
	"context"
	"testing"
)

func TestTenantFrom(t *testing.T) {
	tests := []struct {
		name   string
		ctx    context.Context
		wantID string
		wantOK bool
	}{
		{"none", context.Background(), "", false},
		{"nil", nil, "", false},
		{"set", WithTenant(context.Background(), "a.b"), "a.b", true},
		{"empty means none", WithTenant(context.Background(), ""), "", false},
		{"innermost wins", WithTenant(WithTenant(context.Background(), "a"), "b"), "b", true},
		{"cleared by empty", WithTenant(WithTenant(context.Background(), "a"), ""), "", false},
		{"foreign key ignored", context.WithValue(context.Background(), otherKey("tenant"), "x"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := TenantFrom(tt.ctx)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("TenantFrom = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

func TestTenantFromAllocs(t *testing.T) {
	ctx := WithTenant(context.Background(), "tenant-1")
	if n := testing.AllocsPerRun(100, func() { _, _ = TenantFrom(ctx) }); n != 0 {
		t.Errorf("TenantFrom allocates %v times per call; the driver calls it on every checkout", n)
	}
}

type otherKey string
