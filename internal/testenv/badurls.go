package testenv

// A BadTenant is deploy info that every writer of tenants refuses (the
// store's ValidateUsable, hence the admin API and the tenantsql command),
// and the message they refuse it with. The API answers Want as its error;
// the command prints it after "tenantsql: ". One table, so that a check
// the two stop sharing fails a test.
type BadTenant struct {
	Name       string
	DeployInfo map[string]string // POSTGRES_URL and others
	Want       string
}

// BadTenantPassword is the password of the URLs of BadTenants: no answer
// may show it.
const BadTenantPassword = "pw-in-bad-url"

const badGood = "postgres://app:" + BadTenantPassword + "@10.0.0.1/one"

// BadTenants lists deploy info refused whatever the writer's options: no
// allowed hosts, and every URL with its own password and a TCP host, so
// that only the checks common to all writers are at stake.
var BadTenants = []BadTenant{
	{
		Name:       "port out of range",
		DeployInfo: map[string]string{"POSTGRES_URL": "postgres://app:" + BadTenantPassword + "@10.0.0.1:99999/x"},
		Want:       `invalid deploy_info.POSTGRES_URL "postgres://app:xxxxx@10.0.0.1:99999/x": pgx cannot use it: invalid port`,
	},
	{
		Name:       "bad sslmode",
		DeployInfo: map[string]string{"POSTGRES_URL": "postgres://app:" + BadTenantPassword + "@10.0.0.1/x?sslmode=sometimes"},
		Want:       `invalid deploy_info.POSTGRES_URL "postgres://app:xxxxx@10.0.0.1/x?sslmode=sometimes": pgx cannot use it: failed to configure TLS (sslmode is invalid)`,
	},
	{
		Name:       "file option",
		DeployInfo: map[string]string{"POSTGRES_URL": "postgres://app:" + BadTenantPassword + "@10.0.0.1/x?sslkey=/etc/ssl/private/k.pem"},
		Want: `invalid deploy_info.POSTGRES_URL "postgres://app:xxxxx@10.0.0.1/x?sslkey=/etc/ssl/private/k.pem": option "sslkey" reads a file on the server that connects, ` +
			"which a tenant may not name; set it in the environment of the servers that connect instead (for example PGSSLROOTCERT)",
	},
	{
		Name:       "not postgres",
		DeployInfo: map[string]string{"POSTGRES_URL": "mysql://app:" + BadTenantPassword + "@10.0.0.1/x"},
		Want:       `invalid deploy_info.POSTGRES_URL "mysql://app:xxxxx@10.0.0.1/x": scheme must be postgres:// or postgresql://`,
	},
	{
		Name:       "raw #",
		DeployInfo: map[string]string{"POSTGRES_URL": "postgres://app:" + BadTenantPassword + "@10.0.0.1/x?application_name=a#b"},
		Want:       `invalid deploy_info.POSTGRES_URL: it holds a raw '#', which pgx reads as part of the query and URL parsers as a fragment; percent-encode it (%23)`,
	},
	{
		Name:       "port out of range in another key",
		DeployInfo: map[string]string{"POSTGRES_URL": badGood, "ANALYTICS_URL": "postgres://app:" + BadTenantPassword + "@10.0.0.2:70000/a"},
		Want:       `invalid deploy_info.ANALYTICS_URL "postgres://app:xxxxx@10.0.0.2:70000/a": pgx cannot use it: invalid port`,
	},
	{
		Name:       "file option in another key",
		DeployInfo: map[string]string{"POSTGRES_URL": badGood, "ANALYTICS_URL": "postgresql://app:" + BadTenantPassword + "@10.0.0.2/a?PassFile=/root/.pgpass"},
		Want: `invalid deploy_info.ANALYTICS_URL "postgresql://app:xxxxx@10.0.0.2/a?PassFile=/root/.pgpass": option "passfile" reads a file on the server that connects, ` +
			"which a tenant may not name; set it in the environment of the servers that connect instead (for example PGSSLROOTCERT)",
	},
	// What answers show in place of a secret, written back (an update
	// form filled from GET): stored, it would replace the secret.
	{
		Name:       "masked password",
		DeployInfo: map[string]string{"POSTGRES_URL": "postgres://app:xxxxx@10.0.0.1/one"},
		Want:       `invalid deploy_info.POSTGRES_URL "postgres://app:xxxxx@10.0.0.1/one": its password is xxxxx, what answers show in place of a password; give the password itself`,
	},
	{
		Name:       "masked secret",
		DeployInfo: map[string]string{"POSTGRES_URL": badGood, "API_TOKEN": "xxxxx"},
		Want:       `invalid deploy_info.API_TOKEN "xxxxx": this is what answers show in place of a secret; give the secret itself`,
	},
	{
		Name:       "withheld value",
		DeployInfo: map[string]string{"POSTGRES_URL": badGood, "LEGACY_DSN": "(unparsable URL)"},
		Want:       `invalid deploy_info.LEGACY_DSN "(unparsable URL)": this is what answers show in place of a value they withhold; give the value itself`,
	},
}
