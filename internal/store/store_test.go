package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestKVCompareAndSetSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Bucket(ctx, "calls", 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.Create(ctx, "c1", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "c1", []byte("b")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	rev2, err := b.Update(ctx, "c1", []byte("b"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "c1", []byte("c"), rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	s.Close()
	s.Close() // idempotent

	s, err = Open(ctx, Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err = s.Bucket(ctx, "calls", 0)
	if err != nil {
		t.Fatal(err)
	}
	v, r, err := b.Get(ctx, "c1")
	if err != nil || string(v) != "b" || r != rev2 {
		t.Fatalf("after restart: %q rev %d err %v; want b rev %d", v, r, err, rev2)
	}
	if err := b.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	keys, err := b.Keys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys %v err %v", keys, err)
	}
}
