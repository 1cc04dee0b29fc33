package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tenantsql/tenantsql/keyring"
)

// A Rekeyer is a store that can seal every tenant's secrets again with
// its primary key: File and Redis, given keys.
type Rekeyer interface {
	// Rekey seals with the primary key every secret value held in clear
	// or sealed with another key, and reports what it did. It is
	// idempotent, and a run cut short leaves every tenant either as it
	// was or done: running it again finishes. It changes no tenant's
	// content or version and sends no event, so other processes keep
	// serving and no hook runs. Every tenant is opened, so that a value
	// altered at rest is found. A tenant whose values cannot be opened
	// has its secrets in clear sealed, its sealed values kept as they
	// are, and is reported in RekeyResult.Failed, as is one whose record
	// does not decode (left as it is); the others are rekeyed all the
	// same.
	Rekey(ctx context.Context) (RekeyResult, error)
}

var (
	_ Rekeyer = (*File)(nil)
	_ Rekeyer = (*Redis)(nil)
)

// RekeyResult says what Rekey did. Tenants is the sum of the other
// counts.
type RekeyResult struct {
	KeyID     string  // the primary key's id
	Tenants   int     // tenants looked at
	Sealed    int     // tenants written again, sealed with the primary
	Unchanged int     // tenants that were sealed with the primary already
	Deleted   int     // tenants listed, then deleted before rekey came to them
	Failed    []error // tenants left as they were: *keyring.OpenError values, or errors naming a record that does not decode
}

// errRekeyNoKeys: Rekey on a store without keys.
var errRekeyNoKeys = errors.New("rekey needs keys: open the store with keys (TENANTSQL_KEYS, store URL option keys=env or keys_file=PATH)")

// checkPrimary returns the id of kr's primary key once it has sealed a
// value with it: a provider that cannot hand it out (a KMS unreachable, a
// key of the wrong size) fails here, before Rekey changes anything.
func checkPrimary(kr *keyring.Keyring) (string, error) {
	primary, err := kr.PrimaryID()
	if err != nil {
		return "", fmt.Errorf("rekey: the primary key: %w", err)
	}
	if _, err := kr.Seal("", "", ""); err != nil {
		return "", fmt.Errorf("rekey: seal with the primary key %q: %w", primary, err)
	}
	return primary, nil
}

// needsRekey reports whether the deploy info of tenant id, as it is at
// rest, holds a secret in clear or a value sealed with a key other than
// primary.
func needsRekey(primary string, info map[string]string) bool {
	for k, v := range info {
		if id, ok := keyring.KeyID(v); ok && id != primary {
			return true
		}
		if !keyring.IsSealed(v) && isSecretValue(k, v) {
			return true
		}
	}
	return false
}

// Rekey implements Rekeyer: the file is written again, whole, as every
// write does; that is atomic, so a crash leaves the old file or the new.
func (f *File) Rekey(ctx context.Context) (RekeyResult, error) {
	if f.kr == nil {
		return RekeyResult{}, f.errorf("%w", errRekeyNoKeys)
	}
	primary, err := checkPrimary(f.kr)
	if err != nil {
		return RekeyResult{}, f.errorf("%w", err)
	}
	res := RekeyResult{KeyID: primary}
	err = f.mutateFile(ctx, true, true, func(st *state) (Event, bool, error) {
		res = RekeyResult{KeyID: primary, Tenants: len(st.tenants)}
		var doc fileDoc
		if f.known != nil {
			data, _, err := f.load()
			if err != nil {
				return Event{}, false, err
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				return Event{}, false, f.errorf("%w", err)
			}
		}
		plain := false // a tenant left as it was holds a secret in clear
		for id, ft := range doc.Tenants {
			switch _, err := openInfo(f.kr, id, ft.DeployInfo); {
			case err != nil:
				res.Failed = append(res.Failed, err)
				// Its secrets in clear are sealed all the same, as
				// every write seals them; its sealed ones are kept.
				plain = plain || checkNoPlaintext(id, ft.DeployInfo) != nil
			case needsRekey(primary, ft.DeployInfo):
				res.Sealed++
			default:
				res.Unchanged++
			}
		}
		return Event{}, res.Sealed > 0 || plain, nil
	})
	if err != nil {
		return RekeyResult{}, err
	}
	return res, nil
}

// rekeyScript replaces a record, if it is still the one read, without a
// new version or an event: the tenant's content is the same, only its
// sealing changed, so followers have nothing to apply and no hook runs.
// A write that read the old record meanwhile finds it changed and starts
// again from the new one (Update), as rekey does from a write's.
var rekeyScript = redis.NewScript(scriptPrelude + `
local id, old, record = unpack(ARGV, 4)
local cur = redis.call('HGET', tenants, id)
if not cur then return NOT_FOUND end
if cur ~= old then return CHANGED end
writable()
redis.call('HSET', tenants, id, record)
return WROTE`)

// Rekey implements Rekeyer: each tenant is sealed again in a
// compare-and-swap of its record, so that a write made meanwhile by
// another process is never undone: rekey reads the tenant again and
// retries. A run that leaves no secret in clear marks the store as sealed
// all through (the sealed key set to "all"): from then a process with
// keys refuses a secret in clear (ErrPlaintext). Rekey itself reads them,
// to seal them.
func (r *Redis) Rekey(ctx context.Context) (RekeyResult, error) {
	if r.kr == nil {
		return RekeyResult{}, r.errorf("%w", errRekeyNoKeys)
	}
	if err := r.checkOpen(); err != nil {
		return RekeyResult{}, err
	}
	// The primary key is checked before the store is marked: a rekey
	// that cannot seal must not leave every process without keys unable
	// to write.
	primary, err := checkPrimary(r.kr)
	if err != nil {
		return RekeyResult{}, r.errorf("%w", err)
	}
	// Marked before the pass, so that no process without keys writes a
	// secret in clear behind it (see writable).
	if err := r.c.SetNX(ctx, r.keys.sealed, "1", 0).Err(); err != nil {
		return RekeyResult{}, r.errorf("rekey: %w", err)
	}
	res := RekeyResult{KeyID: primary}
	ids, err := r.c.HKeys(ctx, r.keys.tenants).Result()
	if err != nil {
		return res, r.errorf("rekey: %w", err)
	}
	if testHookRekeyListed != nil {
		testHookRekeyListed(ids)
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Tenants++
		done, err := r.rekeyOne(ctx, primary, id)
		var te *tenantError
		switch {
		case errors.As(err, &te):
			res.Failed = append(res.Failed, te.err)
		case err != nil:
			return res, err
		case done == rekeySealed:
			res.Sealed++
		case done == rekeyDeleted:
			res.Deleted++
		default:
			res.Unchanged++
		}
	}
	// Every secret is sealed (rekeyOne seals those of a tenant it cannot
	// open too): from now on a process with keys refuses one in clear.
	// Since the store was marked before the pass, no process of this
	// version without keys can have written one since.
	if err := r.c.Set(ctx, r.keys.sealed, sealedAll, 0).Err(); err != nil {
		return res, r.errorf("rekey: mark the store as sealed all through: %w", err)
	}
	r.strict.Store(true)
	return res, nil
}

// testHookRekeyListed, if set, is called by Redis.Rekey with the ids it
// listed, before it rekeys them: tests change the store there.
var testHookRekeyListed func(ids []string)

// What rekeyOne did with a tenant.
type rekeyDone int

const (
	rekeyUnchanged rekeyDone = iota // sealed with the primary already
	rekeySealed                     // written again, sealed with the primary
	rekeyDeleted                    // gone: deleted since it was listed
)

// rekeyOne seals tenant id again with primary if it needs it, and reports
// what it did. Every record is opened, even one sealed with the primary
// already, so that one altered or moved is reported (in a *tenantError),
// as File.Rekey does. One that cannot be opened has its secrets in clear
// sealed all the same, and its sealed values that cannot be opened kept
// as they are, as a write to a file does.
func (r *Redis) rekeyOne(ctx context.Context, primary, id string) (rekeyDone, error) {
	for {
		raw, err := r.c.HGet(ctx, r.keys.tenants, id).Result()
		if errors.Is(err, redis.Nil) {
			return rekeyDeleted, nil
		}
		if err != nil {
			return 0, r.errorf("rekey tenant %q: %w", id, err)
		}
		t, err := decodeRecord(id, raw)
		if err != nil {
			// Edited by hand, or by a newer tenantsql: the error names
			// the tenant and says what does not decode, not the record.
			return 0, &tenantError{err: r.errorf("rekey: %w (fix the record, or write the tenant again: tenantsql tenants update)", err)}
		}
		needs := needsRekey(primary, t.DeployInfo)
		plain := checkNoPlaintext(id, t.DeployInfo) != nil
		var openErr error
		t.DeployInfo, openErr = openInfo(r.kr, id, t.DeployInfo)
		switch {
		case openErr != nil && !plain:
			return 0, &tenantError{err: openErr}
		case openErr == nil && !needs:
			return rekeyUnchanged, nil
		}
		rec, err := r.encode(t)
		if err != nil {
			return 0, r.errorf("rekey tenant %q: %w", id, err)
		}
		n, err := r.run(ctx, rekeyScript, id, raw, rec).Int64()
		if err != nil {
			return 0, r.errorf("rekey tenant %q: %w", id, err)
		}
		switch scriptResult(n) {
		case scriptWrote:
			if openErr != nil {
				// Its secrets in clear are sealed now; the tenant is
				// reported for the values that cannot be opened.
				return 0, &tenantError{err: openErr}
			}
			return rekeySealed, nil
		case scriptNotFound:
			return rekeyDeleted, nil
		case scriptChanged:
			continue // written meanwhile: start from the new record
		default:
			return 0, r.errorf("rekey tenant %q: unexpected script answer %d", id, n)
		}
	}
}

// A tenantError is an error of rekeyOne that is the tenant's own (its
// record cannot be opened or decoded), not the store's: Rekey reports it
// and goes on with the other tenants.
type tenantError struct{ err error }

func (e *tenantError) Error() string { return e.err.Error() }
func (e *tenantError) Unwrap() error { return e.err }

// String summarizes the result.
func (res RekeyResult) String() string {
	s := fmt.Sprintf("%d tenants: %d sealed again with key %q, %d already were, %d could not be opened or decoded", res.Tenants, res.Sealed, res.KeyID, res.Unchanged, len(res.Failed))
	if res.Deleted > 0 {
		s += fmt.Sprintf(", %d deleted meanwhile", res.Deleted)
	}
	return s
}
