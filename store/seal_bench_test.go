package store

import (
	"fmt"
	"testing"
)

// BenchmarkFileDecode measures reading a tenant file of 10,000 tenants
// (what OpenFile, and every poll that finds the file changed, does), with
// the secrets in clear and sealed.
//
//	go test -run '^$' -bench FileDecode ./store
func BenchmarkFileDecode(b *testing.B) {
	const n = 10000
	for _, sealed := range []bool{false, true} {
		name := "plain"
		kr := testRing(b, "k1")
		if sealed {
			name = "sealed"
		} else {
			kr = nil
		}
		b.Run(fmt.Sprintf("%d/%s", n, name), func(b *testing.B) {
			st := newState()
			for i := range n {
				id := fmt.Sprintf("tenant-%05d.bench.test", i)
				st.tenants[id] = Tenant{ID: id, DeployInfo: dbInfo(fmt.Sprint("db", i)), Version: 1, CreatedAt: now(), UpdatedAt: now()}
			}
			data, _, err := encodeFile(st, kr, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				got, unopened, _, err := decodeFile(data, kr)
				if err != nil || len(unopened) != 0 || len(got.tenants) != n {
					b.Fatalf("decodeFile: %d tenants, %v, %v", len(got.tenants), unopened, err)
				}
			}
		})
	}
}
