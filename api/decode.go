package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tenantsql/tenantsql/internal/clip"
)

// tenantBody is the body of POST /tenant/ and PUT /tenant/{id}/.
type tenantBody struct {
	tenantID      string
	hasTenantID   bool
	deployInfo    map[string]string
	hasDeployInfo bool
	version       int64
}

// Body fields, by route.
var (
	createFields = []string{"tenant_id", "deploy_info"}
	updateFields = []string{"tenant_id", "deploy_info", "version"}
)

// checkContentType requires application/json, with or without
// parameters; a charset, if given, must be utf-8. A request without a
// Content-Type is refused too: a web page can send a POST with no type, or
// with text/plain, without asking the browser's permission first (no CORS
// preflight), while application/json always needs that permission, which
// this API never grants. So a browser cannot be made to create or change
// tenants from another site, even under WithoutAuth.
func checkContentType(r *http.Request) *apiError {
	values := r.Header.Values("Content-Type")
	switch {
	case len(values) == 0 || values[0] == "":
		return errorf(http.StatusUnsupportedMediaType, "missing Content-Type: send the header Content-Type: application/json with a %s body", clip.String(r.Method))
	case len(values) > 1:
		return errorf(http.StatusUnsupportedMediaType, "Content-Type given %d times: send Content-Type: application/json once", len(values))
	}
	ct := values[0]
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got %q: send the header Content-Type: application/json", clip.String(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type charset must be utf-8, got %q", clip.String(cs))
	}
	return nil
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	if r.Body == nil {
		return nil, nil // a request built by hand; servers always set one
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", mbe.Limit)
	case err != nil:
		// The client went away or sent a broken chunked body.
		return nil, errorf(http.StatusBadRequest, "cannot read the request body: it ended early or is malformed")
	}
	return body, nil
}

// decodeBody parses body as one JSON object with only the given fields.
//
// It walks the tokens itself rather than calling json.Unmarshal: that
// matches field names without regard to case, keeps the last of two equal
// keys without a word, and skips over unknown values however deep. Here a
// field name must match exactly, appear once, and have the right type, and
// the first problem is reported with its line and column. Nothing nests
// deeper than deploy_info's object of strings, so a deeply nested body
// costs nothing.
func decodeBody(body []byte, fields []string) (tenantBody, *apiError) {
	var tb tenantBody
	d := &bodyDecoder{body: body, dec: json.NewDecoder(bytes.NewReader(body))}
	d.dec.UseNumber()
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return tb, errorf(http.StatusBadRequest, `request body is empty: want a JSON object such as {"tenant_id": "tenant-1.example.com", "deploy_info": {"POSTGRES_URL": "postgres://..."}}`)
	}
	tok, err := d.dec.Token()
	if err != nil {
		return tb, d.syntax(err)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return tb, d.errorAt(0, "request body must be a JSON object, got %s", kind(tok))
	}
	seen := map[string]bool{}
	for {
		start := d.dec.InputOffset()
		tok, err := d.dec.Token()
		if err != nil {
			return tb, d.syntax(err)
		}
		if tok == json.Delim('}') {
			break
		}
		key := tok.(string) // Token returns a string or an error in key position
		at := d.tokenAt(start)
		if !slices.Contains(fields, key) {
			return tb, d.errorAt(at, "unknown field %q (known fields: %s; names are case-sensitive)", clip.String(key), strings.Join(fields, ", "))
		}
		if seen[key] {
			return tb, d.errorAt(at, "field %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "tenant_id":
			tb.tenantID, err = d.str(key)
			tb.hasTenantID = true
		case "deploy_info":
			tb.deployInfo, err = d.object(key)
			tb.hasDeployInfo = true
		case "version":
			tb.version, err = d.version(key)
		}
		if err != nil {
			return tb, err.(*apiError)
		}
	}
	if end := d.skipSpace(d.dec.InputOffset()); end < int64(len(body)) {
		return tb, d.errorAt(end, "unexpected data after the JSON object")
	}
	return tb, nil
}

type bodyDecoder struct {
	body []byte
	dec  *json.Decoder
}

// value reads the next value's first token and where it starts.
func (d *bodyDecoder) value() (json.Token, int64, error) {
	at := d.tokenAt(d.dec.InputOffset())
	tok, err := d.dec.Token()
	if err != nil {
		return nil, at, d.syntax(err)
	}
	return tok, at, nil
}

func (d *bodyDecoder) str(field string) (string, error) {
	tok, at, err := d.value()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", d.errorAt(at, "field %q must be a string, got %s", field, kind(tok))
	}
	return s, nil
}

func (d *bodyDecoder) version(field string) (int64, error) {
	tok, at, err := d.value()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, d.errorAt(at, "field %q must be a number, got %s", field, kind(tok))
	}
	v, perr := strconv.ParseInt(string(n), 10, 64)
	if perr != nil || v < 0 {
		return 0, d.errorAt(at, "field %q must be a whole number from 0 to %d, got %s", field, int64(1<<63-1), clip.String(string(n)))
	}
	return v, nil
}

// object reads an object of strings: deploy_info.
func (d *bodyDecoder) object(field string) (map[string]string, error) {
	tok, at, err := d.value()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, d.errorAt(at, "field %q must be an object of strings, got %s", field, kind(tok))
	}
	m := map[string]string{}
	for {
		start := d.dec.InputOffset()
		tok, err := d.dec.Token()
		if err != nil {
			return nil, d.syntax(err)
		}
		if tok == json.Delim('}') {
			return m, nil
		}
		key := tok.(string)
		name := field + "." + clip.String(key)
		if _, dup := m[key]; dup {
			return nil, d.errorAt(d.tokenAt(start), "field %q given twice", name)
		}
		v, err := d.str(name)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
}

// syntax describes a decoding error of the json package. Its messages
// quote at most one character of the input.
func (d *bodyDecoder) syntax(err error) *apiError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return d.errorAt(se.Offset, "request body is not valid JSON: %s", se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return d.errorAt(int64(len(d.body)), "request body ends before its JSON object does")
	}
	return errorf(http.StatusBadRequest, "request body is not valid JSON")
}

// errorAt is a 400 whose message ends with the line and column of byte
// offset off of the body.
func (d *bodyDecoder) errorAt(off int64, format string, args ...any) *apiError {
	line, col := lineCol(d.body, off)
	return errorf(http.StatusBadRequest, "%s (line %d, column %d)", fmt.Sprintf(format, args...), line, col)
}

// tokenAt returns where the token after offset off starts: the decoder's
// offset is just past the previous token, before a ',' or ':' that
// separates them.
func (d *bodyDecoder) tokenAt(off int64) int64 {
	off = d.skipSpace(off)
	if off < int64(len(d.body)) && (d.body[off] == ',' || d.body[off] == ':') {
		off = d.skipSpace(off + 1)
	}
	return off
}

func (d *bodyDecoder) skipSpace(off int64) int64 {
	for off < int64(len(d.body)) {
		switch d.body[off] {
		case ' ', '\t', '\r', '\n':
			off++
		default:
			return off
		}
	}
	return off
}

// lineCol returns the 1-based line and column (in bytes) of offset off.
func lineCol(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// kind names a JSON token's type for a message.
func kind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	}
	return "something else"
}
