package systemd

import "os"

// Env is how the package reads and clears the process environment. The zero
// value is not usable; [OSEnv] is the real one, and tests build their own.
type Env struct {
	Getenv   func(key string) string
	Unsetenv func(key string) error
	Getpid   func() int
}

// OSEnv is the environment of this process.
func OSEnv() Env {
	return Env{Getenv: os.Getenv, Unsetenv: os.Unsetenv, Getpid: os.Getpid}
}

// MapEnv is an environment held in m, for tests and for callers that read the
// variables elsewhere; Unsetenv deletes from m, Getpid returns pid.
func MapEnv(m map[string]string, pid int) Env {
	return Env{
		Getenv:   func(k string) string { return m[k] },
		Unsetenv: func(k string) error { delete(m, k); return nil },
		Getpid:   func() int { return pid },
	}
}

func (e Env) unset(keys ...string) {
	for _, k := range keys {
		_ = e.Unsetenv(k) // os.Unsetenv fails only for an invalid key
	}
}
