package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// ListWebhooks returns every webhook endpoint: configured ones and those
// added through the API. Secrets appear only by their prefix, extra
// headers only by name.
func (c *Client) ListWebhooks(ctx context.Context) ([]*apitypes.Endpoint, error) {
	var out struct {
		Items []*apitypes.Endpoint `json:"items"`
	}
	if err := c.get(ctx, apiPath("webhooks"), nil, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*apitypes.Endpoint{}
	}
	return out.Items, nil
}

// CreateWebhook adds an endpoint (admin role). The answer holds its
// signing secret — the one given in spec, or a generated one — which the
// daemon never shows again. The POST is not repeated on failure: a retry
// after a lost answer would add a second endpoint.
func (c *Client) CreateWebhook(ctx context.Context, spec apitypes.EndpointSpec) (*apitypes.CreatedEndpoint, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var out apitypes.CreatedEndpoint
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("webhooks"), body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhook returns one endpoint.
func (c *Client) GetWebhook(ctx context.Context, id string) (*apitypes.Endpoint, error) {
	var ep apitypes.Endpoint
	if err := c.get(ctx, apiPath("webhooks", id), nil, &ep); err != nil {
		return nil, err
	}
	return &ep, nil
}

// UpdateWebhook changes the fields of an endpoint that patch sets (admin
// role). Endpoints from the daemon's configuration file can only be
// enabled or disabled; other changes are a "webhook-conflict" problem.
func (c *Client) UpdateWebhook(ctx context.Context, id string, patch apitypes.EndpointPatch) (*apitypes.Endpoint, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	var ep apitypes.Endpoint
	if _, err := c.call(ctx, request{method: http.MethodPatch, path: apiPath("webhooks", id), body: body}, &ep); err != nil {
		return nil, err
	}
	return &ep, nil
}

// DeleteWebhook removes an endpoint added through the API, with its
// delivery history (admin role).
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: apiPath("webhooks", id)}, nil)
	return err
}

// RotateWebhookSecret gives an endpoint a new signing secret, returned
// this once (admin role). For grace the previous secret keeps signing too
// (deliveries carry both signatures, see Endpoint.RotatingUntil); a grace
// of 0 retires it at once.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, grace time.Duration) (*apitypes.CreatedEndpoint, error) {
	body, err := json.Marshal(map[string]string{"grace": grace.String()})
	if err != nil {
		return nil, err
	}
	var out apitypes.CreatedEndpoint
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("webhooks", id, "rotate-secret"), body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestWebhook queues a webhook.test event for one endpoint (operator role)
// and returns its delivery as it was when the answer was written — usually
// still pending; WatchDelivery follows it.
func (c *Client) TestWebhook(ctx context.Context, id string) (*apitypes.Delivery, error) {
	var d apitypes.Delivery
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("webhooks", id, "test")}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// WebhookDeliveries returns one page of an endpoint's deliveries, newest
// first. state ("pending", "delivered", "failed" or "" for all) filters
// them; cursor continues from a previous page's NextCursor; limit is the
// page size (0: the server's default of 100, at most 1000).
func (c *Client) WebhookDeliveries(ctx context.Context, id, state, cursor string, limit int) (*apitypes.DeliveryList, error) {
	q := url.Values{}
	setIf(q, "state", state)
	setIf(q, "cursor", cursor)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return c.deliveryList(ctx, apiPath("webhooks", id, "deliveries"), q)
}

// AllWebhookDeliveries yields every delivery of an endpoint in the given
// state ("" for all), newest first, following cursors with pages of
// pageSize (0: the server's default). Iteration stops at the first error,
// which is yielded with a nil delivery.
func (c *Client) AllWebhookDeliveries(ctx context.Context, id, state string, pageSize int) iter.Seq2[*apitypes.Delivery, error] {
	return func(yield func(*apitypes.Delivery, error) bool) {
		cursor := ""
		for {
			page, err := c.WebhookDeliveries(ctx, id, state, cursor, pageSize)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, d := range page.Items {
				if !yield(d, nil) {
					return
				}
			}
			if page.NextCursor == "" || page.NextCursor == cursor {
				return
			}
			cursor = page.NextCursor
		}
	}
}

// EventDeliveries returns the deliveries of one event (its webhook-id, the
// header receivers see) to every endpoint it went to.
func (c *Client) EventDeliveries(ctx context.Context, eventID string) (*apitypes.DeliveryList, error) {
	return c.deliveryList(ctx, apiPath("webhook-events", eventID, "deliveries"), nil)
}

func (c *Client) deliveryList(ctx context.Context, path string, q url.Values) (*apitypes.DeliveryList, error) {
	var out apitypes.DeliveryList
	if err := c.get(ctx, path, q, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*apitypes.Delivery{}
	}
	return &out, nil
}

// GetDelivery returns one delivery with every attempt in History.
func (c *Client) GetDelivery(ctx context.Context, id string) (*apitypes.Delivery, error) {
	var d apitypes.Delivery
	if err := c.get(ctx, apiPath("webhook-deliveries", id), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Redeliver sends a delivery again with a fresh retry budget and the same
// webhook-id (admin role). A delivery whose attempt is in flight is a
// "webhook-conflict" problem.
func (c *Client) Redeliver(ctx context.Context, id string) (*apitypes.Delivery, error) {
	var d apitypes.Delivery
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("webhook-deliveries", id, "redeliver")}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// WatchDelivery polls a delivery every interval (0 means 500ms) until it
// is no longer pending — delivered, or failed once its retries are spent —
// calling fn (if non-nil) with every snapshot, and returns the final one.
// A delivery whose receiver keeps failing stays pending for as long as its
// endpoint's retry schedule lasts (hours by default). Connection failures
// and 5xx answers are retried with backoff, as in WatchJob.
func (c *Client) WatchDelivery(ctx context.Context, id string, interval time.Duration, fn func(*apitypes.Delivery)) (*apitypes.Delivery, error) {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failures := 0
	for {
		d, err := c.GetDelivery(ctx, id)
		switch {
		case err == nil:
			failures = 0
			if fn != nil {
				fn(d)
			}
			if d.State != apitypes.DeliveryPending {
				return d, nil
			}
		case transient(ctx, err) && failures < maxTransientFailures:
			failures++
			if err := c.sleep(ctx, "watch delivery", failures, err); err != nil {
				return nil, err
			}
			continue
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
