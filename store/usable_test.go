package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

func TestValidateUsable(t *testing.T) {
	for _, tt := range testenv.BadTenants {
		t.Run(tt.Name, func(t *testing.T) {
			err := ValidateUsable(Tenant{ID: "t1.test", DeployInfo: tt.DeployInfo})
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateUsable: %v (%T), want a *ValidationError", err, err)
			}
			if err.Error() != tt.Want {
				t.Errorf("ValidateUsable:\n got %s\nwant %s", err, tt.Want)
			}
			if strings.Contains(err.Error(), testenv.BadTenantPassword) {
				t.Errorf("the error shows the password: %s", err)
			}
		})
	}
	for _, info := range []map[string]string{
		{KeyPostgresURL: "postgres://app:pw@10.0.0.1:6543/x?sslmode=require&application_name=a"},
		{KeyPostgresURL: "postgres://app:pw@10.0.0.1/x", "ANALYTICS_URL": "postgresql://app:pw@10.0.0.2/a", "PLAN": "gold", "NOTE": "sslkey=/k"},
	} {
		if err := ValidateUsable(Tenant{ID: "t1.test", DeployInfo: info}); err != nil {
			t.Errorf("ValidateUsable(%v): %v", info, err)
		}
	}
}

func TestURLKeys(t *testing.T) {
	const pg = "postgres://app@h/db"
	for _, tt := range []struct {
		name string
		info map[string]string
		want []string
	}{
		{"default only", map[string]string{KeyPostgresURL: pg, "REGION": "eu"}, []string{KeyPostgresURL}},
		{"default first, others sorted", map[string]string{"Z_URL": pg, KeyPostgresURL: pg, "ANALYTICS_URL": "postgresql://h/a"}, []string{KeyPostgresURL, "ANALYTICS_URL", "Z_URL"}},
		{"no default", map[string]string{"ANALYTICS_URL": pg}, []string{"ANALYTICS_URL"}},
		{"default not a postgres URL", map[string]string{KeyPostgresURL: "https://h/x"}, nil},
		{"none", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLKeys(tt.info); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("URLKeys = %q, want %q", got, tt.want)
			}
		})
	}
}
