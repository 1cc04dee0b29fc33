package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
)

// wantInvalid checks that err is a *ValidationError for field that wraps
// ErrInvalid.
func wantInvalid(t *testing.T, err error, field string) *ValidationError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want an invalid %s", field)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %q (%T) is not a *ValidationError", err, err)
	}
	if ve.Field != field {
		t.Errorf("ValidationError.Field = %q, want %q (error %q)", ve.Field, field, err)
	}
	if ve.Reason == "" {
		t.Errorf("ValidationError %q has no Reason", err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name the field %q", err, field)
	}
	return ve
}

func TestValidateID(t *testing.T) {
	accepted := []string{
		"a",
		"0",
		"tenant-2.test.com",
		"a-b",
		"a.b",
		"a_b",
		"a-",
		"a..b",
		"9lives",
		strings.Repeat("a", MaxIDLen),
	}
	for _, id := range accepted {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", id, err)
		}
	}

	rejected := []struct {
		name, id string
	}{
		{"empty", ""},
		{"129 bytes", strings.Repeat("a", MaxIDLen+1)},
		{"uppercase first", "Tenant"},
		{"uppercase inside", "tenant-A"},
		{"leading dot", ".a"},
		{"leading dash", "-a"},
		{"leading underscore", "_a"},
		{"leading space", " a"},
		{"inner space", "a b"},
		{"trailing space", "a "},
		{"tab", "a\tb"},
		{"NUL", "a\x00b"},
		{"slash", "a/b"},
		{"colon", "a:b"},
		{"at", "a@b"},
		{"unicode inside", "tenänt"},
		{"unicode first", "ümlaut"},
		{"invalid UTF-8", "a\xffb"},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			ve := wantInvalid(t, ValidateID(tc.id), "tenant_id")
			if len(ve.Value) > 64+len("...") {
				t.Errorf("Value is %d bytes; a huge id must be shortened in errors", len(ve.Value))
			}
		})
	}
}

func validInfo() map[string]string {
	return map[string]string{KeyPostgresURL: "postgres://app:hunter2@db.internal:5432/app?sslmode=disable"}
}

func TestValidate(t *testing.T) {
	const secret = "s3cr3t"
	with := func(kv ...string) map[string]string {
		m := validInfo()
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	manyKeys := func(n int) map[string]string {
		m := validInfo()
		for i := 1; len(m) < n; i++ {
			m[fmt.Sprintf("K%d", i)] = "v"
		}
		return m
	}

	valid := []struct {
		name string
		info map[string]string
	}{
		{"plain", validInfo()},
		{"postgresql scheme", map[string]string{KeyPostgresURL: "postgresql://db/app"}},
		{"socket dir in query", map[string]string{KeyPostgresURL: "postgres:///app?host=/var/run/postgresql"}},
		{"extra keys kept", with("REGION", "eu-west-1", "_private", "x", "k9", "")},
		{"longest key", with(strings.Repeat("K", maxDeployKeyLen), "v")},
		{"longest value", with("NOTE", strings.Repeat("x", maxDeployValLen))},
		{"most keys", manyKeys(maxDeployKeys)},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(Tenant{ID: "t1", DeployInfo: tc.info}); err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
		})
	}

	invalid := []struct {
		name  string
		id    string
		info  map[string]string
		field string
	}{
		{"bad id", "T1", validInfo(), "tenant_id"},
		{"nil deploy info", "t1", nil, "deploy_info"},
		{"empty deploy info", "t1", map[string]string{}, "deploy_info"},
		{"missing POSTGRES_URL", "t1", map[string]string{"REGION": "eu"}, "deploy_info.POSTGRES_URL"},
		{"empty POSTGRES_URL", "t1", map[string]string{KeyPostgresURL: ""}, "deploy_info.POSTGRES_URL"},
		{"upper-case scheme", "t1", map[string]string{KeyPostgresURL: "POSTGRES://app:" + secret + "@db/app"}, "deploy_info.POSTGRES_URL"},
		{"mysql scheme", "t1", map[string]string{KeyPostgresURL: "mysql://app:" + secret + "@db/app"}, "deploy_info.POSTGRES_URL"},
		{"http scheme with query password", "t1", map[string]string{KeyPostgresURL: "http://db/app?password=" + secret}, "deploy_info.POSTGRES_URL"},
		{"no scheme", "t1", map[string]string{KeyPostgresURL: "db.internal:5432/app"}, "deploy_info.POSTGRES_URL"},
		{"key/value DSN", "t1", map[string]string{KeyPostgresURL: "host=db password=" + secret}, "deploy_info.POSTGRES_URL"},
		{"opaque", "t1", map[string]string{KeyPostgresURL: "postgres:app:" + secret + "@db"}, "deploy_info.POSTGRES_URL"},
		// A password holding '/', '?' or '#' that was not percent-encoded
		// makes url.Parse read it as a port and quote it in its error.
		{"unparsable: slash in password", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + "/x@db/app"}, "deploy_info.POSTGRES_URL"},
		{"unparsable: hash in password", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + "#x@db/app"}, "deploy_info.POSTGRES_URL"},
		{"unparsable: question mark in password", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + "?x@db/app"}, "deploy_info.POSTGRES_URL"},
		{"unparsable: bad escape in password", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + "%zz@db/app"}, "deploy_info.POSTGRES_URL"},
		{"unparsable: space in userinfo", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + " x@db/app"}, "deploy_info.POSTGRES_URL"},
		{"unparsable: control character", "t1", map[string]string{KeyPostgresURL: "postgres://app:" + secret + "\x7f@db/app"}, "deploy_info.POSTGRES_URL"},
		{"empty key", "t1", with("", "v"), "deploy_info"},
		{"key starts with digit", "t1", with("1KEY", "v"), "deploy_info"},
		{"key with dash", "t1", with("MY-KEY", "v"), "deploy_info"},
		{"key with space", "t1", with("MY KEY", "v"), "deploy_info"},
		{"key with unicode", "t1", with("SCHLÜSSEL", "v"), "deploy_info"},
		{"key too long", "t1", with(strings.Repeat("K", maxDeployKeyLen+1), "v"), "deploy_info"},
		{"too many keys", "t1", manyKeys(maxDeployKeys + 1), "deploy_info"},
		{"value too long", "t1", with("NOTE", strings.Repeat("x", maxDeployValLen+1)), "deploy_info.NOTE"},
		{"POSTGRES_URL too long", "t1", map[string]string{KeyPostgresURL: "postgres://db/" + strings.Repeat("x", maxDeployValLen)}, "deploy_info.POSTGRES_URL"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(Tenant{ID: tc.id, DeployInfo: tc.info})
			wantInvalid(t, err, tc.field)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the password", err)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("error is %d bytes long; huge values must not be echoed", len(err.Error()))
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	const secret = "hunter2"
	tests := []struct {
		in   string
		want string // "" means: only check that secret is gone
	}{
		{"", ""},
		{"postgres://app:" + secret + "@db:5432/app", "postgres://app:xxxxx@db:5432/app"},
		{"postgres://:" + secret + "@db/app", "postgres://:xxxxx@db/app"},
		{"postgres://app@db/app", "postgres://app@db/app"},
		{"postgres://db/app?sslmode=disable", "postgres://db/app?sslmode=disable"},
		{"postgres://db/app?password=" + secret, "postgres://db/app?password=xxxxx"},
		{"postgres://db/app?sslmode=require&password=" + secret + "&application_name=x", "postgres://db/app?sslmode=require&password=xxxxx&application_name=x"},
		{"postgres://app:" + secret + "@db/app?password=" + secret, "postgres://app:xxxxx@db/app?password=xxxxx"},
		{"postgres://db/app?password=" + secret + "&password=" + secret, "postgres://db/app?password=xxxxx&password=xxxxx"},
		{"postgres://db/app?sslpassword=" + secret, "postgres://db/app?sslpassword=xxxxx"},
		// A '%' that is not a valid escape makes url.ParseQuery drop the
		// pair; the raw query must still not show it.
		{"postgres://db/app?password=" + secret + "%off", "postgres://db/app?password=xxxxx"},
		{"postgres://db/app?pass%zzword=" + secret, ""},
		// pgx decodes keys: these name a password too.
		{"postgres://u@h/db?pass%77ord=x", "postgres://u@h/db?pass%77ord=xxxxx"},
		{"postgres://db/app?PASS%57ORD=" + secret + "&sslmode=disable", "postgres://db/app?PASS%57ORD=xxxxx&sslmode=disable"},
		{"postgres://db/app?ssl%70assword=" + secret, "postgres://db/app?ssl%70assword=xxxxx"},
		{"postgres://db/app?a=1;%70assword=" + secret, "postgres://db/app?a=1;%70assword=xxxxx"},
		// Unparsable: not echoed at all.
		{"postgres://app:" + secret + "/x@db/app", ""},
		{"postgres://app:" + secret + "#x@db/app", ""},
		{"postgres://app:" + secret + " x@db/app", ""},
	}
	for _, tc := range tests {
		got := RedactURL(tc.in)
		if strings.Contains(got, secret) {
			t.Errorf("RedactURL(%q) = %q, contains the password", tc.in, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// secretTenant holds a password in every place the redaction rules cover.
func secretTenant() Tenant {
	return Tenant{
		ID: "tenant-2.test.com",
		DeployInfo: map[string]string{
			KeyPostgresURL:  "postgres://app:pw-in-userinfo@db:5432/app?password=pw-in-query&sslmode=disable",
			"REPLICA_URL":   "postgres://ro:pw-in-replica@replica/app",
			"API_TOKEN":     "pw-in-token",
			"SMTP_PASSWORD": "pw-in-password-key",
			"LICENSE_KEY":   "pw-in-key",
			"DB_PASS":       "pw-in-pass",
			"PWD":           "pw-in-pwd",
			"REDIS_AUTH":    "pw-in-auth",
			"CREDENTIALS":   "pw-in-credentials",
			"REGION":        "eu-west-1",
		},
		Version: 7,
	}
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, "pw-in-") {
		t.Errorf("%s contains a password: %s", what, s)
	}
}

func TestTenantRedaction(t *testing.T) {
	tn := secretTenant()
	orig := maps.Clone(tn.DeployInfo)

	r := tn.Redacted()
	for k, v := range r.DeployInfo {
		assertNoSecret(t, "Redacted().DeployInfo["+k+"]", v)
	}
	if got := r.DeployInfo["REGION"]; got != "eu-west-1" {
		t.Errorf("Redacted changed a harmless value: REGION = %q", got)
	}
	if got, want := r.PostgresURL(), "postgres://app:xxxxx@db:5432/app?password=xxxxx&sslmode=disable"; got != want {
		t.Errorf("Redacted().PostgresURL() = %q, want %q", got, want)
	}
	if !maps.Equal(tn.DeployInfo, orig) {
		t.Errorf("Redacted modified the original: %v", tn.DeployInfo)
	}

	ev := Event{Type: EventUpdate, Version: 3, Tenant: tn}
	sync := Event{Type: EventSync, Version: 3, Tenants: []Tenant{tn}}
	forms := map[string]string{
		"String":         tn.String(),
		"GoString":       tn.GoString(),
		"%v":             fmt.Sprintf("%v", tn),
		"%+v":            fmt.Sprintf("%+v", tn),
		"%#v":            fmt.Sprintf("%#v", tn),
		"%s":             fmt.Sprintf("%s", tn), //lint:ignore S1025 the %s verb itself is under test, not String
		"%v pointer":     fmt.Sprintf("%v", &tn),
		"%v slice":       fmt.Sprintf("%v", []Tenant{tn}),
		"%+v event":      fmt.Sprintf("%+v", ev),
		"%v sync event":  fmt.Sprintf("%v", sync),
		"%#v sync event": fmt.Sprintf("%#v", sync),
	}
	for name, s := range forms {
		assertNoSecret(t, name, s)
		if !strings.Contains(s, tn.ID) {
			t.Errorf("%s does not name the tenant: %s", name, s)
		}
	}
	if s := tn.String(); !strings.Contains(s, "REGION=eu-west-1") || !strings.Contains(s, "version 7") {
		t.Errorf("String() = %q, want the harmless keys and the version", s)
	}

	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("tenant changed", "tenant", tn)
		log.Info("tenant changed", "tenant", &tn)
		log.Info("event", "event", ev)
		out := buf.String()
		assertNoSecret(t, "slog "+h.name, out)
		if !strings.Contains(out, tn.ID) || !strings.Contains(out, "xxxxx") {
			t.Errorf("slog %s output lacks the id or the redacted URL:\n%s", h.name, out)
		}
	}

	// A URL that does not parse may be mostly password: not shown at all.
	bad := Tenant{ID: "t1", DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:pw-in-bad/url@db/app"}}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "tenant", bad)
	assertNoSecret(t, "slog of unparsable URL", buf.String())
	assertNoSecret(t, "String of unparsable URL", bad.String())

	// Neither is a key=value DSN, where the password is in plain sight.
	dsn := Tenant{ID: "t1", DeployInfo: map[string]string{
		KeyPostgresURL: "host=db password=pw-in-dsn",
		"REPLICA_DSN":  "host=replica user=ro password=pw-in-replica-dsn",
	}}
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "tenant", dsn)
	assertNoSecret(t, "slog of key=value DSN", buf.String())
	assertNoSecret(t, "String of key=value DSN", dsn.String())
	for k, v := range dsn.Redacted().DeployInfo {
		assertNoSecret(t, "Redacted key=value DSN "+k, v)
	}
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{
		EventSync: "sync", EventCreate: "create", EventUpdate: "update", EventDelete: "delete",
		0: "EventType(0)", 42: "EventType(42)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("EventType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

// Secrets finds what Redacted hides, so that masking a text with them
// hides it too.
func TestSecrets(t *testing.T) {
	tests := []struct {
		name string
		info map[string]string
		want []string // each must be among the secrets
		not  []string // none may be
	}{
		{"postgres URL", map[string]string{KeyPostgresURL: "postgres://app:pg-pw@db/x"}, []string{"pg-pw"}, []string{"app", "db"}},
		{"another URL", map[string]string{"REDIS_URL": "redis://u:redis-pw@cache:6379/0"}, []string{"redis-pw"}, []string{"cache"}},
		{"password= DSN", map[string]string{"LEGACY": "host=h password=dsn-pw"}, []string{"dsn-pw"}, []string{"h"}},
		// pgx and libpq allow spaces around '=' and quotes around the value.
		{"password = DSN", map[string]string{"REPLICA_DSN": "host=db user=app password = s3cret"}, []string{"s3cret"}, []string{"db", "app"}},
		{"quoted DSN password", map[string]string{"REPLICA_DSN": "host=db password = 'p w' sslpassword=k-pw"}, []string{"p w", "k-pw"}, []string{"db"}},
		{"key naming a secret", map[string]string{"BILLING_API_KEY": "sk-1", "x_token": "tok-2"}, []string{"sk-1", "tok-2"}, nil},
		{"plain values", map[string]string{"REGION": "eu-west", "PLAN": "gold"}, nil, []string{"eu-west", "gold"}},
		{"empty secret", map[string]string{"API_KEY": ""}, nil, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Secrets(tt.info)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("Secrets(%v) = %q, want %q among them", tt.info, got, w)
				}
			}
			for _, n := range tt.not {
				if slices.Contains(got, n) {
					t.Errorf("Secrets(%v) = %q, want no %q", tt.info, got, n)
				}
			}
			// What Redacted shows holds none of them.
			shown := fmt.Sprint(Tenant{ID: "t", DeployInfo: tt.info}.Redacted().DeployInfo)
			for _, s := range got {
				if s != "" && strings.Contains(shown, s) {
					t.Errorf("Redacted shows %q, one of Secrets: %s", s, shown)
				}
			}
		})
	}
}
