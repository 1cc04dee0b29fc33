package pgurl

import "testing"

func TestFirstSchema(t *testing.T) {
	long := "a123456789b123456789c123456789d123456789e123456789f123456789g123456789"
	tests := []struct{ in, want string }{
		{"tenant_42", "tenant_42"},
		{"Tenant_42", "tenant_42"},
		{" tenant_42 , public", "tenant_42"},
		{`"Tenant 42", public`, "Tenant 42"},
		{`"a""b"`, `a"b`},
		{`"a,b",c`, "a,b"},
		{`"$user", public`, "$user"},
		{"$user,public", "$user"},
		{"", ""},
		{" , public", ""},
		{`"unterminated`, ""},
		{`"a" b`, ""},
		{"a b, c", ""},
		{long, long[:63]},
		{"sché", "sché"},
		{"SCHÉ", "schÉ"},
	}
	for _, tt := range tests {
		if got := FirstSchema(tt.in); got != tt.want {
			t.Errorf("FirstSchema(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
