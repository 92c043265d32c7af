package vsphere

import (
	"context"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

func findByInventoryPath(ctx context.Context, c *vim25.Client, req *types.FindByInventoryPath) (*types.ManagedObjectReference, error) {
	res, err := methods.FindByInventoryPath(ctx, c, req)
	if err != nil {
		return nil, err
	}
	return res.Returnval, nil
}

func findAllByUUID(ctx context.Context, c *vim25.Client, id string, instance bool) ([]types.ManagedObjectReference, error) {
	res, err := methods.FindAllByUuid(ctx, c, &types.FindAllByUuid{
		This: *c.ServiceContent.SearchIndex, Uuid: id, VmSearch: true, InstanceUuid: &instance,
	})
	if err != nil {
		return nil, err
	}
	return res.Returnval, nil
}

func isManagedObjectNotFound(err error) bool {
	return fault.Is(err, &types.ManagedObjectNotFound{})
}
