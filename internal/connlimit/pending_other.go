//go:build !unix

package connlimit

import "net"

// pending: no portable peek; an idle connection is taken as idle.
func pending(net.Conn) bool { return false }
