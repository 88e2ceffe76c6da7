package httpapi

import "testing"

// TestClientAddr: connection caps and address quotas count IPv4 clients
// by address and IPv6 clients by /64, so one host cannot escape them by
// using another of its addresses.
func TestClientAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:4000":              "192.0.2.7",
		"[::ffff:192.0.2.7]:4000":     "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:4000": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:5000": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:4000":         "fe80::/64",
		"[::1]:80":                    "::/64",
		"not an address":              "not an address",
	} {
		if got := clientAddr(remote); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}
