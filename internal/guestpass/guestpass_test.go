package guestpass

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPass(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := New([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return now })
	p := k.Mint("123456789", TTL)
	if !strings.HasPrefix(p.User, Prefix+"123456789-") || p.Password == "" || p.GuestID == "" {
		t.Fatalf("pass %+v", p)
	}
	c, err := k.Check(p.User, p.Password)
	if err != nil || c.ConferenceID != "123456789" || c.GuestID != p.GuestID || !c.Expires.Equal(now.Add(TTL)) {
		t.Fatalf("check: %+v, %v", c, err)
	}
	if k.Mint("123456789", TTL).GuestID == p.GuestID {
		t.Error("two passes share a guest id")
	}

	// Another meeting or a later expiry in the username needs another
	// password.
	for _, user := range []string{
		strings.Replace(p.User, "123456789", "987654321", 1),
		strings.Replace(p.User, "-1800000600-", "-1900000600-", 1),
	} {
		if _, err := k.Check(user, p.Password); !errors.Is(err, ErrForged) {
			t.Errorf("check %s with the original password: %v, want forged", user, err)
		}
	}
	// Another secret's pass.
	other := New([]byte("another secret, 32 bytes long..."), func() time.Time { return now })
	if _, err := other.Check(p.User, p.Password); !errors.Is(err, ErrForged) {
		t.Errorf("another secret's pass: %v", err)
	}
	// Expiry.
	now = now.Add(TTL)
	if _, err := k.Check(p.User, p.Password); !errors.Is(err, ErrExpired) {
		t.Errorf("expired pass: %v", err)
	}
	// Not a guest's.
	for _, user := range []string{"alice", "guest-", "guest-1-2", "guest-1-2-zz", "guest-x-1-0123456789abcdef", "guest-1-2-0123456789abcdef-4"} {
		if _, err := Parse(user); !errors.Is(err, ErrNotGuest) {
			t.Errorf("Parse(%q): %v", user, err)
		}
	}
}
