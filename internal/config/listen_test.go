package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestListenHint(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return fmt.Errorf("listen on :80: %w", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)})
	}
	tests := []struct {
		name string
		err  error
		want []string // parts of the hint
		not  []string
	}{
		{"privileged port", opErr(syscall.EACCES), []string{"privileged", "root", "CAP_NET_BIND_SERVICE", "1024"}, []string{"free port"}},
		{"in use", opErr(syscall.EADDRINUSE), []string{"in use", "--port", "ss -ltnp"}, []string{"privileged"}},
		{"no such address", opErr(syscall.EADDRNOTAVAIL), []string{"--host", "not an address of this machine"}, []string{"privileged", "free port"}},
		{"anything else", errors.New("boom"), nil, []string{"privileged", "free port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ListenHint(tt.err)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("ListenHint(%v) = %q, want it to contain %q", tt.err, got, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("ListenHint(%v) = %q, want it not to contain %q", tt.err, got, w)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("ListenHint(%v) = %q: more than one line", tt.err, got)
			}
		})
	}
}

// A real bind of a privileged port by a normal user gets the privileged hint.
func TestListenHintRealBind(t *testing.T) {
	if os.Geteuid() == 0 {
		// root binds any port: check the in-use case instead, which every user can provoke.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, err = net.Listen("tcp", ln.Addr().String())
		if got := ListenHint(err); !strings.Contains(got, "in use") {
			t.Errorf("ListenHint(%v) = %q, want the in-use hint", err, got)
		}
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:1")
	if err == nil {
		ln.Close()
		t.Skip("this user may bind port 1 (CAP_NET_BIND_SERVICE or ip_unprivileged_port_start=0)")
	}
	if got := ListenHint(err); !strings.Contains(got, "privileged") {
		t.Errorf("ListenHint(%v) = %q, want the privileged-port hint", err, got)
	}
}
