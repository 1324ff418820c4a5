package callctl

import (
	"context"

	"github.com/switchboard-voice/switchboard/internal/store"
)

// CallStore is where call records live, under the call id: the sb_calls
// bucket of the node's JetStream in production, any store with the same
// compare-and-set semantics in tests. Errors are store.ErrNotFound,
// store.ErrExists and store.ErrConflict as *store.KV returns them.
type CallStore interface {
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	Create(ctx context.Context, key string, val []byte) (uint64, error)
	Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error)
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context) ([]string, error)
}

var _ CallStore = (*store.KV)(nil)
