package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
)

// Cluster is the membership view the /cluster route shows
// (daemon/cluster.Node implements it).
type Cluster interface {
	Members(ctx context.Context) (*apitypes.Cluster, error)
}

type clusterOutput struct {
	Body apitypes.Cluster
}

// registerCluster adds GET /cluster when the daemon has a membership.
func (s *Server) registerCluster() {
	if s.opts.Cluster == nil {
		return
	}
	huma.Register(s.api, op("getCluster", http.MethodGet, apitypes.APIPrefix+"/cluster", "viewer",
		"The daemons sharing this database: live or dead, and the leader", "system"),
		func(ctx context.Context, _ *struct{}) (*clusterOutput, error) {
			c, err := s.opts.Cluster.Members(ctx)
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			return &clusterOutput{Body: *c}, nil
		})
}
