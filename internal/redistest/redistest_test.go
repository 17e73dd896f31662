package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	wrong := &Server{Addr: s.Addr, Password: "wrong"}
	if err := wrong.ping(ctx); err == nil {
		t.Error("the server took a wrong password")
	}
}

func TestStartSkipsWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	skipped := false
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Error("Start did not skip without redis-server")
	}
}
