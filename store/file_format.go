package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/keyring"
)

// The JSON format of the file store: decoding with errors that name the
// line, column, tenant and field, and encoding sorted by id.

// fileDoc is the file's format.
type fileDoc struct {
	Version int64                 `json:"version,omitempty"`
	Tenants map[string]fileTenant `json:"tenants"`
}

type fileTenant struct {
	DeployInfo map[string]string `json:"deploy_info"`
	Version    int64             `json:"version,omitempty"`
	CreatedAt  *time.Time        `json:"created_at,omitempty"`
	UpdatedAt  *time.Time        `json:"updated_at,omitempty"`
}

// decodeFile decodes the file's content, opening sealed values with kr.
// A tenant whose values cannot be opened is kept, its values sealed, and
// described in unopened. at says how the file holds secrets.
func decodeFile(data []byte, kr *keyring.Keyring) (st state, unopened []error, at atRest, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return state{}, nil, at, errors.New(`file is empty (want {"tenants": {...}})`)
	}
	if err := checkDuplicateKeys(data); err != nil {
		return state{}, nil, at, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		return state{}, nil, at, describeJSONError(data, err)
	}
	// Not dec.More: it reports false for a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return state{}, nil, at, errors.New("unexpected data after the top-level JSON object")
	}
	if doc.Tenants == nil {
		return state{}, nil, at, errors.New(`no "tenants" object (want {"tenants": {...}})`)
	}
	st = state{version: doc.Version, tenants: make(map[string]Tenant, len(doc.Tenants))}
	for id, ft := range doc.Tenants {
		t := Tenant{ID: id, DeployInfo: ft.DeployInfo, Version: max(ft.Version, 1)}
		if ft.CreatedAt != nil {
			t.CreatedAt = ft.CreatedAt.UTC()
		}
		if ft.UpdatedAt != nil {
			t.UpdatedAt = ft.UpdatedAt.UTC()
		}
		at.sealed = at.sealed || hasSealed(t.DeployInfo)
		if err := checkNoPlaintext(id, t.DeployInfo); err != nil {
			if at.plain == nil {
				at.plain = make(map[string]plainRecord)
			}
			at.plain[id] = plainRecord{err: err, raw: ft}
		}
		info, openErr := openInfo(kr, id, t.DeployInfo)
		for k, v := range t.DeployInfo {
			if keyring.IsSealed(v) && info[k] != v { // opened
				if at.cache == nil {
					at.cache = make(sealCache)
				}
				at.cache.add(id, k, info[k], v)
			}
		}
		t.DeployInfo = info
		if err := validateRead(t, openErr); err != nil {
			return state{}, nil, at, fmt.Errorf("tenant %q: %w", shorten(id), err)
		}
		if openErr != nil {
			unopened = append(unopened, openErr)
		}
		st.tenants[id] = t
	}
	return st, unopened, at, nil
}

// atRest says how a file holds secrets.
type atRest struct {
	sealed bool                   // some value is sealed
	plain  map[string]plainRecord // tenants with a secret in clear, by id
	cache  sealCache              // the sealed values opened, with their plaintext
}

// A plainRecord is a tenant of the file that holds a secret in clear.
type plainRecord struct {
	err error      // a *PlaintextError
	raw fileTenant // the tenant as the file holds it
}

// checkDuplicateKeys rejects an object that names a key twice, anywhere in
// the file (a tenant, a deploy_info key, "tenants" itself), which
// encoding/json would silently resolve to the last one. Syntax errors are
// left to the strict decode, which reports them with a position.
func checkDuplicateKeys(data []byte) error {
	err := walkDuplicates(json.NewDecoder(bytes.NewReader(data)), nil, 0)
	if errors.Is(err, errJSONSyntax) {
		return nil
	}
	return err
}

var errJSONSyntax = errors.New("syntax error")

// maxJSONDepth bounds the recursion of walkDuplicates; encoding/json
// refuses deeper documents itself.
const maxJSONDepth = 10000

func walkDuplicates(dec *json.Decoder, path []string, depth int) error {
	if depth > maxJSONDepth {
		return errJSONSyntax
	}
	tok, err := dec.Token()
	if err != nil {
		return errJSONSyntax
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if err := walkDuplicates(dec, path, depth+1); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errJSONSyntax
			}
			key, _ := tok.(string)
			if seen[key] {
				return duplicateKeyError(path, key)
			}
			seen[key] = true
			if err := walkDuplicates(dec, append(path, key), depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return errJSONSyntax
	}
	return nil
}

func duplicateKeyError(path []string, key string) error {
	if len(path) == 1 && path[0] == "tenants" {
		return fmt.Errorf("tenant %q appears twice in \"tenants\"", shorten(key))
	}
	where := "the top-level object"
	if len(path) > 0 {
		q := make([]string, len(path))
		for i, p := range path {
			q[i] = strconv.Quote(shorten(p))
		}
		where = strings.Join(q, ".")
	}
	return fmt.Errorf("%s names %q twice", where, shorten(key))
}

// describeJSONError adds the line and column to errors that carry an offset.
func describeJSONError(data []byte, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		off int64 = -1
	)
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("unexpected end of file: the JSON is incomplete")
	}
	if off < 0 {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	// The offset counts the bytes read up to and including the offending
	// one; show that byte's position.
	line, col := 1, 1
	for _, b := range data[:min(max(int(off)-1, 0), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}

// encodeFile renders st in the file format, tenants sorted by id, their
// secret values sealed with kr; those cache holds sealed with the primary
// key are not sealed again (see sealCache). next holds the sealed form of
// every secret value written; it is nil without kr. cache may be nil.
// The tenants in carry are written as they are there, in place of st's.
func encodeFile(st state, kr *keyring.Keyring, cache sealCache, carry map[string]fileTenant) (data []byte, next sealCache, err error) {
	var primary string
	if kr != nil {
		if primary, err = kr.PrimaryID(); err != nil {
			return nil, nil, err
		}
		next = make(sealCache, len(cache))
	}
	doc := fileDoc{Version: st.version, Tenants: make(map[string]fileTenant, len(st.tenants))}
	for id, ft := range carry {
		doc.Tenants[id] = ft
	}
	for id, t := range st.tenants {
		if _, ok := carry[id]; ok {
			continue
		}
		info, err := sealCached(kr, primary, id, t.DeployInfo, cache, next)
		if err != nil {
			return nil, nil, err
		}
		ft := fileTenant{DeployInfo: info, Version: t.Version}
		if !t.CreatedAt.IsZero() {
			ft.CreatedAt = &t.CreatedAt
		}
		if !t.UpdatedAt.IsZero() {
			ft.UpdatedAt = &t.UpdatedAt
		}
		doc.Tenants[id] = ft
	}
	data, err = json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(data, '\n'), next, nil
}

// write replaces the file with st atomically and returns its new FileInfo
