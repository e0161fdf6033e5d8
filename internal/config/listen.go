package config

import (
	"errors"
	"syscall"
)

// ListenHint is the advice added to an error from binding the listening
// socket: what the user can do about it, in one line without a leading
// space; "" when there is nothing useful to say. It tells a port already in
// use from a privileged one (below 1024 for a user without
// CAP_NET_BIND_SERVICE), which is free but may not be bound.
func ListenHint(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "the port is in use by another process (see: ss -ltnp); stop it or choose another port with --port"
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 are privileged: run as root, grant the binary CAP_NET_BIND_SERVICE " +
			"(setcap 'cap_net_bind_service=+ep' lbserver), or choose a port >= 1024 with --port"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "the --host address is not an address of this machine"
	}
	return ""
}
