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
	// serving and no hook runs. A tenant whose values cannot be opened
	// is left as it is and reported in RekeyResult.Failed.
	Rekey(ctx context.Context) (RekeyResult, error)
}

var (
	_ Rekeyer = (*File)(nil)
	_ Rekeyer = (*Redis)(nil)
)

// RekeyResult says what Rekey did.
type RekeyResult struct {
	KeyID   string  // the primary key's id
	Tenants int     // tenants looked at
	Sealed  int     // tenants written again, sealed with the primary
	Failed  []error // tenants left as they were: *keyring.OpenError values
}

// errRekeyNoKeys: Rekey on a store without keys.
var errRekeyNoKeys = errors.New("rekey needs keys: open the store with keys (TENANTSQL_KEYS, store URL option keys=env or keys_file=PATH)")

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
	primary, err := f.kr.PrimaryID()
	if err != nil {
		return RekeyResult{}, f.errorf("%w", err)
	}
	res := RekeyResult{KeyID: primary}
	err = f.mutate(ctx, func(st *state) (Event, bool, error) {
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
		for id, ft := range doc.Tenants {
			if _, err := openInfo(f.kr, id, ft.DeployInfo); err != nil {
				res.Failed = append(res.Failed, err)
				continue
			}
			if needsRekey(primary, ft.DeployInfo) {
				res.Sealed++
			}
		}
		return Event{}, res.Sealed > 0, nil
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
local id, old, record = unpack(ARGV, 3)
local cur = redis.call('HGET', tenants, id)
if not cur then return NOT_FOUND end
if cur ~= old then return CHANGED end
redis.call('HSET', tenants, id, record)
return WROTE`)

// Rekey implements Rekeyer: each tenant is sealed again in a
// compare-and-swap of its record, so that a write made meanwhile by
// another process is never undone: rekey reads the tenant again and
// retries.
func (r *Redis) Rekey(ctx context.Context) (RekeyResult, error) {
	if r.kr == nil {
		return RekeyResult{}, r.errorf("%w", errRekeyNoKeys)
	}
	if err := r.checkOpen(); err != nil {
		return RekeyResult{}, err
	}
	if err := r.checkKeys(ctx); err != nil {
		return RekeyResult{}, err
	}
	primary, err := r.kr.PrimaryID()
	if err != nil {
		return RekeyResult{}, r.errorf("%w", err)
	}
	res := RekeyResult{KeyID: primary}
	ids, err := r.c.HKeys(ctx, r.keys.tenants).Result()
	if err != nil {
		return res, r.errorf("rekey: %w", err)
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Tenants++
		sealed, err := r.rekeyOne(ctx, primary, id)
		var oe *keyring.OpenError
		switch {
		case errors.As(err, &oe):
			res.Failed = append(res.Failed, err)
		case err != nil:
			return res, err
		case sealed:
			res.Sealed++
		}
	}
	return res, nil
}

// rekeyOne seals tenant id again with primary if it needs it, and reports
// whether it did.
func (r *Redis) rekeyOne(ctx context.Context, primary, id string) (bool, error) {
	for {
		raw, err := r.c.HGet(ctx, r.keys.tenants, id).Result()
		if errors.Is(err, redis.Nil) {
			return false, nil // deleted meanwhile
		}
		if err != nil {
			return false, r.errorf("rekey tenant %q: %w", id, err)
		}
		t, err := decodeRecord(id, raw)
		if err != nil {
			return false, r.errorf("rekey: %w", err)
		}
		if !needsRekey(primary, t.DeployInfo) {
			return false, nil
		}
		if t.DeployInfo, err = openInfo(r.kr, id, t.DeployInfo); err != nil {
			return false, err
		}
		rec, err := r.encode(t)
		if err != nil {
			return false, r.errorf("rekey tenant %q: %w", id, err)
		}
		n, err := r.run(ctx, rekeyScript, id, raw, rec).Int64()
		if err != nil {
			return false, r.errorf("rekey tenant %q: %w", id, err)
		}
		switch scriptResult(n) {
		case scriptWrote:
			return true, nil
		case scriptNotFound:
			return false, nil
		case scriptChanged:
			continue // written meanwhile: start from the new record
		default:
			return false, r.errorf("rekey tenant %q: unexpected script answer %d", id, n)
		}
	}
}

// String summarizes the result.
func (res RekeyResult) String() string {
	return fmt.Sprintf("%d tenants, %d sealed again with key %q, %d could not be opened", res.Tenants, res.Sealed, res.KeyID, len(res.Failed))
}
