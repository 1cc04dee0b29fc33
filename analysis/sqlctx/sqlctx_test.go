package sqlctx_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/tenantsql/tenantsql/analysis/sqlctx"
)

// Each package under testdata/src is a sample of application code whose
// "// want" comments list the diagnostics it must get, and no others;
// fix.go.golden is fix.go after its suggested fixes.
func TestAnalyzer(t *testing.T) {
	dir := analysistest.TestData()
	tests := []struct {
		pkg   string
		why   string
		fixes bool
	}{
		{"nofix", "every kind of call without a context, no ctx in scope: reported, no fix", false},
		{"fix", "a ctx in scope: reported, with the fix that passes it", true},
		{"clean", "context methods and look-alikes: nothing reported", false},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			if tt.fixes {
				analysistest.RunWithSuggestedFixes(t, dir, sqlctx.Analyzer, tt.pkg)
			} else {
				analysistest.Run(t, dir, sqlctx.Analyzer, tt.pkg)
			}
		})
	}
}
