package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runNspawnRootScript runs scripts/deps.d/26-nspawn-root.sh with a stand-in
// debootstrap first on PATH (it records its arguments and fails, so nothing
// is downloaded) and the root and keyring paths given; it returns the
// script's error and output, and the stand-in's arguments ("" if it did not
// run).
func runNspawnRootScript(t *testing.T, keyring string) (error, string, string) {
	t.Helper()
	relRequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	args := filepath.Join(dir, "debootstrap-args")
	fake := "#!/bin/sh\necho \"$*\" >'" + args + "'\necho 'stand-in debootstrap: not building' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "debootstrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(cmdCtx(t, 5*time.Minute), "bash", filepath.Join(repoRoot(), "scripts", "deps.d", "26-nspawn-root.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"),
		"LBSERVER_NSPAWN_ROOT="+filepath.Join(dir, "cache", "root"), "LBSERVER_DEBIAN_KEYRING="+keyring)
	out, err := cmd.CombinedOutput()
	got, _ := os.ReadFile(args)
	return err, string(out), strings.TrimSpace(string(got))
}

// The nspawn root is never built from unverified packages: without the
// Debian archive keyring the script fails before debootstrap runs, saying
// what is missing.
func TestNspawnRootRefusesWithoutKeyring(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-keyring.gpg")
	err, out, args := runNspawnRootScript(t, missing)
	if args != "" {
		t.Errorf("debootstrap ran without the keyring: %s", args)
	}
	if err == nil {
		t.Errorf("exit 0 without the keyring, want a failure\n%s", out)
	}
	if !strings.Contains(out, missing) || !strings.Contains(out, "keyring") {
		t.Errorf("output %q, want it to name the missing keyring %s", out, missing)
	}
}

// With the keyring, debootstrap is told to check every signature with it
// (--force-check-gpg: a missing or bad signature is an error, never a
// warning).
func TestNspawnRootChecksSignatures(t *testing.T) {
	keyring := "/usr/share/keyrings/debian-archive-keyring.gpg"
	if _, err := os.Stat(keyring); err != nil {
		t.Fatalf("%s: %v (scripts/deps.d/26-nspawn-root.sh installs debian-archive-keyring)", keyring, err)
	}
	_, out, args := runNspawnRootScript(t, keyring)
	if !strings.Contains(" "+args+" ", " --force-check-gpg ") || !strings.Contains(args, "--keyring="+keyring) {
		t.Errorf("debootstrap %q, want --force-check-gpg and --keyring=%s\n%s", args, keyring, out)
	}
}
