// Package clip bounds how much of an input a message echoes.
package clip

// Max is how many bytes of an input String keeps.
const Max = 64

// String returns s, or its first Max bytes followed by "..." when it is
// longer: an error message may quote what it was given without growing
// with it. The cut is at a byte, so it may split a multi-byte character.
func String(s string) string {
	if len(s) <= Max {
		return s
	}
	return s[:Max] + "..."
}
