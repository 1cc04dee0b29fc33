// Package keyring seals secret values with AES-256-GCM under named keys,
// so that a tenant store can hold its tenants' passwords encrypted at rest.
//
// A Keyring takes its keys from a KeyProvider: Static holds keys given in
// the program, in the TENANTSQL_KEYS environment variable (ParseKeys) or
// in a key file (ReadKeyFile); a provider backed by a KMS or Vault
// implements the same two methods. One key is the primary, with which
// Seal seals; Open opens a value sealed with any key the provider knows,
// so keys can be rotated without downtime. Across a fleet of processes:
// add the new key after the primary everywhere, then make it the primary
// everywhere, then seal every value again with it (tenantsql tenants
// rekey), then drop the old key; so that no process meets a value sealed
// with a key it does not have yet, or has dropped already.
//
// # Format
//
// A sealed value is text:
//
//	enc:v1:KEYID:BASE64URL(nonce || ciphertext)
//
// The version ("v1") names the algorithm, AES-256-GCM with a random 96-bit
// nonce, and the key id names the key, so that a reader knows which key to
// use and an error can say which one it lacks. The additional
// authenticated data are the tenant id, the name of the field the value
// was sealed for and the key id: a sealed value copied to another tenant,
// another field or relabelled with another key id fails to open rather
// than opening as someone else's password.
//
// # Errors
//
// Errors name the tenant, the field and the key id, never the value or a
// key: an *OpenError wraps ErrUnknownKey (the provider does not hold the
// key), ErrTampered (the value fails authentication: altered, moved, or
// sealed with another key under the same id) or ErrMalformed.
package keyring
