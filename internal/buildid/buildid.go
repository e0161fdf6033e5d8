// Package buildid names the code a process runs: a short hash of its
// executable file, so a user (and a test) can see that every process serves
// a new build after a reload.
package buildid

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// OfFile returns the first 12 hex digits of the SHA-256 of the file at path.
func OfFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("build id: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("build id of %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
