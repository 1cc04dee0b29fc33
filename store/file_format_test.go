package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestFileMalformed(t *testing.T) {
	t.Parallel()
	const url = `"postgres://app:hunter2@db/app"`
	// The syntax error is the '}' after the trailing comma on line 3.
	multiLine := "{\n  \"tenants\": {\n    \"a\": {\"deploy_info\": {\"POSTGRES_URL\": " + url + ",}}\n  }\n}\n"
	col := strings.Index(strings.Split(multiLine, "\n")[2], ",}") + 2

	tests := []struct {
		name string
		data string
		want []string // substrings of the error, besides the path
	}{
		{"syntax error", multiLine, []string{fmt.Sprintf("line 3, column %d", col), "invalid character '}'"}},
		{"syntax error on line 1", `{"tenants": x}`, []string{"line 1, column 13", "invalid character 'x'"}},
		{"syntax error at line start", "{\"tenants\": {}\n,\n}", []string{"line 3, column 1"}},
		{"wrong type", "{\"tenants\": {\n\"a\": {\"deploy_info\": 5}}}", []string{"line 2", "deploy_info"}},
		{"truncated", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2@`, []string{"incomplete"}},
		{"truncated after a value", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": ` + url + `}}`, []string{"incomplete"}},
		{"empty", "", []string{"empty"}},
		{"only whitespace", " \n\t\n", []string{"empty"}},
		{"not an object", `["a"]`, []string{"array"}},
		{"null", `null`, []string{`"tenants"`}},
		{"unknown field", `{"tenants": {"a": {"deploy-info": {"POSTGRES_URL": ` + url + `}}}}`, []string{`"deploy-info"`}},
		{"unknown top-level field", `{"tenant": {}}`, []string{`"tenant"`}},
		{"missing tenants", `{"version": 3}`, []string{`"tenants"`}},
		{"tenants null", `{"tenants": null}`, []string{`"tenants"`}},
		{"duplicate id", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": ` + url + `}}, "b": {"deploy_info": {"POSTGRES_URL": ` + url + `}}, "a": {"deploy_info": {"POSTGRES_URL": "postgres://db/other"}}}}`, []string{`"a"`, "twice"}},
		{"duplicate tenants", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": ` + url + `}}}, "tenants": {}}`, []string{"top-level object", `"tenants" twice`}},
		{"duplicate deploy_info key", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": ` + url + `, "POSTGRES_URL": "postgres://db/other"}}}}`, []string{`"tenants"."a"."deploy_info" names "POSTGRES_URL" twice`}},
		{"invalid id", `{"tenants": {"Tenant-A": {"deploy_info": {"POSTGRES_URL": ` + url + `}}}}`, []string{`"Tenant-A"`, "tenant_id"}},
		{"empty id", `{"tenants": {"": {"deploy_info": {"POSTGRES_URL": ` + url + `}}}}`, []string{"tenant_id"}},
		{"missing POSTGRES_URL", `{"tenants": {"a": {"deploy_info": {"PG_URL": ` + url + `}}}}`, []string{`"a"`, "POSTGRES_URL"}},
		{"missing deploy_info", `{"tenants": {"a": {}}}`, []string{`"a"`, "deploy_info"}},
		{"not postgres", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": "mysql://app:hunter2@db/app"}}}}`, []string{`"a"`, "scheme"}},
		{"unparsable URL", `{"tenants": {"a": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2/x@db/app"}}}}`, []string{`"a"`, "POSTGRES_URL"}},
		{"trailing data", `{"tenants": {}} {"tenants": {}}`, []string{"after"}},
		{"extra closing brace", `{"tenants": {}}}`, []string{"after"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "tenants.json", tc.data)
			f, err := OpenFile(context.Background(), path, WithFilePollInterval(0))
			if err == nil {
				f.Close()
				t.Fatalf("OpenFile succeeded, want an error")
			}
			msg := err.Error()
			for _, want := range append([]string{path}, tc.want...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q contains the password", msg)
			}
		})
	}
}

// A file nested deeper than encoding/json accepts is an error, not a
// stack overflow in the duplicate-key check that runs first.
func TestFileDeepNesting(t *testing.T) {
	path := writeFile(t, t.TempDir(), "tenants.json", `{"tenants": {"a": {"deploy_info": `+strings.Repeat("[", 3_000_000)+`}}}`)
	if _, err := OpenFile(context.Background(), path, WithFilePollInterval(0)); err == nil {
		t.Fatal("OpenFile succeeded")
	} else if !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name the file", err)
	}
}
