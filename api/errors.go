package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenantsql/tenantsql/store"
)

// An apiError is an answer that is not a success: a status and a message
// safe to show. Messages are built here from what the package controls,
// or taken from store errors, which the store guarantees hold no password;
// never from the text of an error of pgx or the network.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errStoreUnavailable is what a client sees when the store fails. The
// cause is logged, not shown: it may name internal hosts or paths.
var errStoreUnavailable = &apiError{status: http.StatusServiceUnavailable, msg: "the tenant store is unavailable; try again later (the cause is in the server log)"}

// fromStore maps an error of the store to an answer. ok is false for
// failures of the store itself, which the caller logs.
func fromStore(err error, id string) (e *apiError, ok bool) {
	var ve *store.ValidationError
	switch {
	case errors.As(err, &ve):
		// Its Value is redacted by the store (store.RedactURL).
		return &apiError{status: http.StatusBadRequest, msg: ve.Error()}, true
	case errors.Is(err, store.ErrInvalid):
		return errorf(http.StatusBadRequest, "invalid tenant %q", id), true
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "tenant %q not found", id), true
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, "tenant %q already exists; use PUT /tenant/%s/ to change it", id, id), true
	case errors.Is(err, store.ErrConflict):
		// The store's message says which version is current; store errors
		// hold no password.
		return errorf(http.StatusConflict, "%s; read the tenant again and retry with its current version", strings.TrimPrefix(err.Error(), "store: ")), true
	}
	return errStoreUnavailable, false
}

// writeJSON answers v as JSON with status. It encodes first, so that an
// encoding failure becomes a proper 500 instead of half an answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Answers are served as JSON with nosniff, never embedded in HTML:
	// "<token>" reads better than "\u003ctoken\u003e".
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"the answer could not be encoded as JSON"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	// Answers hold tenant data: keep them out of shared caches, and keep
	// browsers from reading them as anything but JSON.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, struct {
		Error string `json:"error"`
	}{e.msg})
}
