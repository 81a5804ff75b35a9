package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client defaults.
const (
	// DefaultDialTimeout bounds connecting to the socket.
	DefaultDialTimeout = 2 * time.Second
	// DefaultTimeout bounds a whole request, answer included. Moves and
	// fencing wait for the cluster, so it is generous.
	DefaultTimeout = 2 * time.Minute
)

// maxResponse bounds the body of an answer the client reads.
const maxResponse = 8 << 20

// Client calls the admin API of the tandemd listening on Socket. Its zero
// value dials DefaultSocket with the default timeouts. Set the fields before
// the first call; a Client is then safe for concurrent use.
//
// Every error of its methods starts with the operation ("takeover: ...").
// An answer of the server with an error status is an *Error carrying the
// server's message; failing to reach the daemon is an *UnreachableError.
type Client struct {
	// Socket is the path of tandemd's socket; DefaultSocket when empty.
	Socket string
	// DialTimeout bounds connecting; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// Timeout bounds each call as a whole; DefaultTimeout when zero,
	// unbounded (but for the caller's context) when negative.
	Timeout time.Duration

	once sync.Once
	hc   *http.Client
}

// NewClient returns a Client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path}
}

// dialError marks a failure to connect, as opposed to one after connecting.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		dialTimeout := c.DialTimeout
		if dialTimeout <= 0 {
			dialTimeout = DefaultDialTimeout
		}
		socket := c.socket()
		c.hc = &http.Client{
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					d := net.Dialer{Timeout: dialTimeout}
					conn, err := d.DialContext(ctx, "unix", socket)
					if err != nil {
						return nil, &dialError{err}
					}
					return conn, nil
				},
				DisableCompression: true,
				MaxIdleConns:       2,
				IdleConnTimeout:    30 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	})
	return c.hc
}

// Close closes the connections the Client keeps open between calls.
func (c *Client) Close() error {
	c.httpClient().CloseIdleConnections()
	return nil
}

// do sends one request and returns the body of a successful answer.
func (c *Client) do(ctx context.Context, op, method, path string, body any) ([]byte, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tandemd"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("%s: answer from tandemd larger than %d bytes", op, maxResponse)
	}
	if resp.StatusCode >= 400 {
		return nil, &Error{Op: op, Status: resp.StatusCode, Message: errorMessage(resp, data)}
	}
	return data, nil
}

// transportError tells a caller's deadline or cancellation apart from a
// daemon that cannot be reached.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	var de *dialError
	if !errors.As(err, &de) && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer from tandemd at %s in time: %w", op, c.socket(), ctx.Err())
		}
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if de != nil {
		err = de.err
	} else {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		err = fmt.Errorf("connection lost before an answer: %w", err)
	}
	return &UnreachableError{Op: op, Socket: c.socket(), Err: err}
}

// errorMessage returns the server's message from an error answer, or a
// description of the answer when it is not the JSON the server writes.
func errorMessage(resp *http.Response, data []byte) string {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error != "" {
		return eb.Error
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text == "" {
		return resp.Status
	}
	return resp.Status + ": " + text
}

// decode unmarshals a document and checks that this client reads its
// schema.
func decode(op string, data []byte, v any, schema *int) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: bad answer from tandemd: %w", op, err)
	}
	if *schema != Schema {
		return fmt.Errorf("%s: tandemd answered with schema %d, this client reads schema %d", op, *schema, Schema)
	}
	return nil
}

// Status returns the state of the pair (GET /v1/status).
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	data, err := c.StatusJSON(ctx)
	if err != nil {
		return st, err
	}
	err = decode("status", data, &st, &st.Schema)
	return st, err
}

// StatusJSON returns the status document as the server wrote it.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	return c.do(ctx, "status", http.MethodGet, "/v1/status", nil)
}

// Resources returns the resource group in start order (GET /v1/resources).
func (c *Client) Resources(ctx context.Context) ([]Resource, error) {
	data, err := c.ResourcesJSON(ctx)
	if err != nil {
		return nil, err
	}
	var rl ResourceList
	if err := decode("resources", data, &rl, &rl.Schema); err != nil {
		return nil, err
	}
	return rl.Resources, nil
}

// ResourcesJSON returns the resource list document as the server wrote it.
func (c *Client) ResourcesJSON(ctx context.Context) ([]byte, error) {
	return c.do(ctx, "resources", http.MethodGet, "/v1/resources", nil)
}

// Standby gives up the service (POST /v1/standby).
func (c *Client) Standby(ctx context.Context) error {
	_, err := c.do(ctx, "standby", http.MethodPost, "/v1/standby", nil)
	return err
}

// Takeover takes the service (POST /v1/takeover).
func (c *Client) Takeover(ctx context.Context) error {
	_, err := c.do(ctx, "takeover", http.MethodPost, "/v1/takeover", nil)
	return err
}

// Failover moves the service to the other node (POST /v1/failover).
func (c *Client) Failover(ctx context.Context) error {
	_, err := c.do(ctx, "failover", http.MethodPost, "/v1/failover", nil)
	return err
}

// Maintenance turns maintenance mode on or off (POST /v1/maintenance).
func (c *Client) Maintenance(ctx context.Context, on bool) error {
	_, err := c.do(ctx, "maintenance", http.MethodPost, "/v1/maintenance", MaintenanceRequest{On: &on})
	return err
}

// Cleanup clears the failure record of the named resource
// (POST /v1/resources/{name}/cleanup).
func (c *Client) Cleanup(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("cleanup: empty resource name")
	}
	_, err := c.do(ctx, "cleanup", http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/cleanup", nil)
	return err
}

// Fence fences node now (POST /v1/fence); self must be true to fence the
// local node. The error is nil only when the node is confirmed fenced.
func (c *Client) Fence(ctx context.Context, node string, self bool) (FenceReport, error) {
	var rep FenceReport
	data, err := c.do(ctx, "fence", http.MethodPost, "/v1/fence", FenceRequest{Node: node, Self: self})
	if err != nil {
		return rep, err
	}
	err = decode("fence", data, &rep, &rep.Schema)
	return rep, err
}
