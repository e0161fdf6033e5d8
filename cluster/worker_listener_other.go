//go:build !linux

package cluster

import "net"

// slotListener elsewhere than Linux: no worker adopts another's slot there
// (workers run in-process), so it is the slot's listener as it is.
type slotListener struct{ net.Listener }

func newSlotListener(own net.Listener) *slotListener { return &slotListener{own} }

func (l *slotListener) adopt(int, net.Listener) func() { return func() {} }
