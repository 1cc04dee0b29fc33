package store

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// reloadOnFailure makes a cluster client reread which node serves which
// slots when a command could not reach its node, or the cluster said it
// is down. go-redis rereads it on MOVED answers, which a master that was
// killed never gives: without this, the client keeps dialling the dead
// master, whose replica took its slots over seconds ago, until its state
// reload interval (60 s by default) has passed (go-redis issue 3979). The
// reload runs in the background, at most once per 200 ms.
func (r *Redis) reloadOnFailure(err error) {
	cc, ok := r.c.(*redis.ClusterClient)
	if !ok || err == nil || errors.Is(err, context.Canceled) {
		return
	}
	var answer redis.Error
	if errors.As(err, &answer) && !strings.HasPrefix(answer.Error(), "CLUSTERDOWN") {
		return // the node answered: it is there
	}
	cc.ReloadState(context.Background())
}
