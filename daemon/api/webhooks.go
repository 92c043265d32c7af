package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
)

type webhookIDInput struct {
	ID string `path:"id" minLength:"1" maxLength:"64"`
}

type endpointOutput struct {
	Body *apitypes.Endpoint
}

type createdEndpointOutput struct {
	Status   int
	Location string `header:"Location"`
	Body     apitypes.CreatedEndpoint
}

type endpointListOutput struct {
	Body struct {
		Items []*apitypes.Endpoint `json:"items"`
	}
}

type rotateInput struct {
	ID   string `path:"id" minLength:"1" maxLength:"64"`
	Body struct {
		Grace string `json:"grace,omitempty" doc:"How long the previous secret keeps signing too, e.g. 24h (default 24h; 0s ends it now)"`
	}
}

type deliveriesInput struct {
	ID     string `path:"id" minLength:"1" maxLength:"64"`
	State  string `query:"state" enum:"pending,delivered,failed"`
	Cursor string `query:"cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

type deliveryListOutput struct {
	Body apitypes.DeliveryList
}

type deliveryOutput struct {
	Status int
	Body   *apitypes.Delivery
}

func (s *Server) registerWebhooks() {
	w := s.opts.Webhooks
	if w == nil {
		return
	}
	const tag = "webhooks"
	huma.Register(s.api, op("listWebhooks", http.MethodGet, apitypes.APIPrefix+"/webhooks", "viewer", "List webhook endpoints (secrets and header values are never shown)", tag),
		func(ctx context.Context, _ *struct{}) (*endpointListOutput, error) {
			list, err := w.List(ctx)
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			out := &endpointListOutput{}
			out.Body.Items = list
			return out, nil
		})

	create := op("createWebhook", http.MethodPost, apitypes.APIPrefix+"/webhooks", "admin", "Add a webhook endpoint; the response holds its signing secret, shown only this once", tag)
	create.DefaultStatus = http.StatusCreated
	create.Errors = append(create.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, create, func(ctx context.Context, in *struct{ Body apitypes.EndpointSpec }) (*createdEndpointOutput, error) {
		ep, secret, err := w.Create(ctx, in.Body)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &createdEndpointOutput{Status: http.StatusCreated, Location: apitypes.APIPrefix + "/webhooks/" + ep.ID, Body: apitypes.CreatedEndpoint{Endpoint: ep, Secret: secret}}, nil
	})

	get := op("getWebhook", http.MethodGet, apitypes.APIPrefix+"/webhooks/{id}", "viewer", "Get a webhook endpoint", tag)
	get.Errors = append(get.Errors, http.StatusNotFound)
	huma.Register(s.api, get, func(ctx context.Context, in *webhookIDInput) (*endpointOutput, error) {
		ep, err := w.Get(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &endpointOutput{Body: ep}, nil
	})

	patch := op("updateWebhook", http.MethodPatch, apitypes.APIPrefix+"/webhooks/{id}", "admin",
		"Change a webhook endpoint (endpoints from the configuration file can only be enabled or disabled)", tag)
	patch.Errors = append(patch.Errors, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity)
	huma.Register(s.api, patch, func(ctx context.Context, in *struct {
		ID   string `path:"id" minLength:"1" maxLength:"64"`
		Body apitypes.EndpointPatch
	}) (*endpointOutput, error) {
		ep, err := w.Update(ctx, in.ID, in.Body)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &endpointOutput{Body: ep}, nil
	})

	del := op("deleteWebhook", http.MethodDelete, apitypes.APIPrefix+"/webhooks/{id}", "admin", "Remove a webhook endpoint and its delivery history", tag)
	del.DefaultStatus = http.StatusNoContent
	del.Errors = append(del.Errors, http.StatusNotFound, http.StatusConflict)
	huma.Register(s.api, del, func(ctx context.Context, in *webhookIDInput) (*struct{}, error) {
		if err := w.Delete(ctx, in.ID); err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return nil, nil
	})

	rotate := op("rotateWebhookSecret", http.MethodPost, apitypes.APIPrefix+"/webhooks/{id}/rotate-secret", "admin",
		"Replace the signing secret; during the grace period deliveries carry signatures with both secrets", tag)
	rotate.Errors = append(rotate.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, rotate, func(ctx context.Context, in *rotateInput) (*createdEndpointOutput, error) {
		grace := 24 * time.Hour
		if in.Body.Grace != "" {
			g, err := time.ParseDuration(in.Body.Grace)
			if err != nil {
				return nil, problem(http.StatusUnprocessableEntity, apitypes.ProblemInvalidWebhook, "grace: want a duration such as 24h")
			}
			grace = g
		}
		ep, secret, err := w.RotateSecret(ctx, in.ID, grace)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &createdEndpointOutput{Status: http.StatusOK, Body: apitypes.CreatedEndpoint{Endpoint: ep, Secret: secret}}, nil
	})

	test := op("testWebhook", http.MethodPost, apitypes.APIPrefix+"/webhooks/{id}/test", "operator", "Send a webhook.test event to this endpoint", tag)
	test.DefaultStatus = http.StatusAccepted
	test.Errors = append(test.Errors, http.StatusNotFound)
	huma.Register(s.api, test, func(ctx context.Context, in *webhookIDInput) (*deliveryOutput, error) {
		d, err := w.Test(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &deliveryOutput{Status: http.StatusAccepted, Body: d}, nil
	})

	list := op("listWebhookDeliveries", http.MethodGet, apitypes.APIPrefix+"/webhooks/{id}/deliveries", "viewer", "Delivery history of an endpoint, newest first", tag)
	list.Errors = append(list.Errors, http.StatusNotFound)
	huma.Register(s.api, list, func(ctx context.Context, in *deliveriesInput) (*deliveryListOutput, error) {
		if _, err := w.Get(ctx, in.ID); err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		items, next, err := w.Deliveries(ctx, webhooks.DeliveryFilter{EndpointID: in.ID, State: in.State, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &deliveryListOutput{Body: apitypes.DeliveryList{Items: items, NextCursor: next}}, nil
	})

	eventDel := op("listEventDeliveries", http.MethodGet, apitypes.APIPrefix+"/webhook-events/{id}/deliveries", "viewer", "Deliveries of one event (by webhook-id) to every endpoint", tag)
	eventDel.Errors = append(eventDel.Errors, http.StatusNotFound)
	huma.Register(s.api, eventDel, func(ctx context.Context, in *struct {
		ID     string `path:"id" minLength:"1" maxLength:"64" doc:"The event's webhook-id"`
		Cursor string `query:"cursor"`
		Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
	}) (*deliveryListOutput, error) {
		items, next, err := w.EventDeliveries(ctx, in.ID, in.Cursor, in.Limit)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &deliveryListOutput{Body: apitypes.DeliveryList{Items: items, NextCursor: next}}, nil
	})

	getDel := op("getWebhookDelivery", http.MethodGet, apitypes.APIPrefix+"/webhook-deliveries/{id}", "viewer", "A delivery with every attempt (status, latency, error)", tag)
	getDel.Errors = append(getDel.Errors, http.StatusNotFound)
	huma.Register(s.api, getDel, func(ctx context.Context, in *webhookIDInput) (*deliveryOutput, error) {
		d, err := w.Delivery(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &deliveryOutput{Status: http.StatusOK, Body: d}, nil
	})

	redeliver := op("redeliverWebhook", http.MethodPost, apitypes.APIPrefix+"/webhook-deliveries/{id}/redeliver", "admin",
		"Send a delivery again now with a fresh retry budget (same webhook-id)", tag)
	redeliver.DefaultStatus = http.StatusAccepted
	redeliver.Errors = append(redeliver.Errors, http.StatusNotFound)
	huma.Register(s.api, redeliver, func(ctx context.Context, in *webhookIDInput) (*deliveryOutput, error) {
		d, err := w.Redeliver(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &deliveryOutput{Status: http.StatusAccepted, Body: d}, nil
	})
}
