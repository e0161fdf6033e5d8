package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// listenFDsStart is SD_LISTEN_FDS_START: the first passed descriptor.
const listenFDsStart = 3

// ErrNotTCPListener is wrapped by the error for a passed descriptor that is not
// a listening TCP socket (a unix or UDP socket, a connected socket, a file).
var ErrNotTCPListener = errors.New("not a listening TCP socket")

// Files returns the sockets systemd passed to this process (descriptors 3,
// 4, ... as LISTEN_FDS counts them), in order, each named by LISTEN_FDNAMES
// (the socket unit's name by default; "LISTEN_FD_3" when no name was passed).
// Each is checked to be a listening TCP socket (IPv4 or IPv6); the first that
// is not gives an error wrapping [ErrNotTCPListener] and every file is closed.
// The descriptors are marked close-on-exec, so children get them only when
// handed over explicitly (exec.Cmd.ExtraFiles).
//
// Files returns nil, nil when nothing was passed to this process: LISTEN_PID
// unset or naming another process (as sd_listen_fds(3) does), or LISTEN_FDS
// unset or 0. It always removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
// from env, so children do not take the sockets as theirs.
func Files(env Env) ([]*os.File, error) {
	return listenFiles(env, listenFDsStart)
}

// Listeners is [Files] as net.Listeners (each a *net.TCPListener). The
// os.Files are closed: each listener holds its own descriptor.
func Listeners(env Env) ([]net.Listener, error) {
	return listeners(env, listenFDsStart)
}

func listeners(env Env, first int) ([]net.Listener, error) {
	files, err := listenFiles(env, first)
	if err != nil {
		return nil, err
	}
	lns := make([]net.Listener, 0, len(files))
	for i, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			for _, g := range files[i+1:] {
				g.Close()
			}
			return nil, fmt.Errorf("passed socket %s: %w", f.Name(), err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// passed reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, removes them, and
// returns how many descriptors were passed to this process and their names.
func passed(env Env) (n int, names []string, err error) {
	pidS, nS, namesS := env.Getenv("LISTEN_PID"), env.Getenv("LISTEN_FDS"), env.Getenv("LISTEN_FDNAMES")
	env.unset("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
	if pidS == "" || nS == "" {
		return 0, nil, nil
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 {
		return 0, nil, fmt.Errorf("LISTEN_PID=%q: want a process id", pidS)
	}
	if pid != env.Getpid() {
		return 0, nil, nil // meant for another process (a parent that did not unset it)
	}
	n, err = strconv.Atoi(nS)
	if err != nil || n < 0 {
		return 0, nil, fmt.Errorf("LISTEN_FDS=%q: want a number of descriptors", nS)
	}
	if namesS != "" {
		names = strings.Split(namesS, ":")
	}
	return n, names, nil
}

func fdName(fd, i int, names []string) string {
	if i < len(names) && names[i] != "" {
		return names[i]
	}
	return "LISTEN_FD_" + strconv.Itoa(fd)
}
