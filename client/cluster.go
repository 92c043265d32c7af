package client

import (
	"context"

	"github.com/hypersdk/hypersdk/apitypes"
)

// Cluster lists the daemons sharing the answering daemon's database, live
// or dead, and which one leads.
func (c *Client) Cluster(ctx context.Context) (*apitypes.Cluster, error) {
	var out apitypes.Cluster
	if err := c.get(ctx, apiPath("cluster"), nil, &out); err != nil {
		return nil, err
	}
	if out.Nodes == nil {
		out.Nodes = []apitypes.ClusterNode{}
	}
	return &out, nil
}
