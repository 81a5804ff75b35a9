package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/fence"
)

// peerFencer is the fence agent that powers the peer off. Its parameters
// are checked against the agent's own metadata before the daemon starts,
// so a typo shows now rather than when the peer dies.
func peerFencer(peer *config.Node) (fence.Fencer, error) {
	if peer.Fence == nil {
		return nil, fmt.Errorf("daemon: node %s has no fence agent, and fencing through the quorum disk is not available in this version", peer.Name)
	}
	a := &fence.Agent{Name: peer.Fence.Agent, Node: peer.Name, Params: peer.Fence.Params}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Check(ctx); err != nil {
		return nil, fmt.Errorf("daemon: fence agent of %s: %w", peer.Name, err)
	}
	return a, nil
}
