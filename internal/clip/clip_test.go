package clip

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"tenant-1", "tenant-1"},
		{strings.Repeat("a", Max), strings.Repeat("a", Max)},
		{strings.Repeat("a", Max+1), strings.Repeat("a", Max) + "..."},
		{strings.Repeat("b", 10000), strings.Repeat("b", Max) + "..."},
	}
	for _, tt := range tests {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%d bytes) = %q, want %q", len(tt.in), got, tt.want)
		}
	}
}
