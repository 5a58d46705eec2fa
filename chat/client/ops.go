package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/replichat/replichat/chat/wire"
)

// Register creates the account user. It does not log in.
func (c *Client) Register(ctx context.Context, user, password string) error {
	return c.do(ctx, wire.OpRegister, wire.RegisterRequest{User: user, Password: password}, nil)
}

// Login logs in as user and returns the number of messages queued for the
// user. The client keeps the credentials in memory to log in again after a
// failover.
func (c *Client) Login(ctx context.Context, user, password string) (unread int, err error) {
	var resp wire.LoginResponse
	if err := c.do(ctx, wire.OpLogin, wire.LoginRequest{User: user, Password: password}, &resp); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.creds = &credentials{user: user, password: password}
	c.mu.Unlock()
	return resp.Unread, nil
}

// User returns the name the client is logged in as, "" if none.
func (c *Client) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creds == nil {
		return ""
	}
	return c.creds.user
}

// Logout ends the login (and a Listen, on the server's side) and forgets
// the credentials.
func (c *Client) Logout(ctx context.Context) error {
	if err := c.do(ctx, wire.OpLogout, wire.LogoutRequest{}, nil); err != nil {
		return err
	}
	c.forgetCredentials()
	return nil
}

func (c *Client) forgetCredentials() {
	c.mu.Lock()
	c.creds = nil
	c.mu.Unlock()
}

// Users returns one page of the accounts whose names match pattern (a
// shell-style wildcard, "" for all) and are greater than after, and the
// cursor of the next page ("" after the last). limit 0 means the server's
// page size.
func (c *Client) Users(ctx context.Context, pattern, after string, limit int) ([]wire.UserInfo, string, error) {
	var resp wire.UsersResponse
	if err := c.do(ctx, wire.OpUsers, wire.UsersRequest{Pattern: pattern, After: after, Limit: limit}, &resp); err != nil {
		return nil, "", err
	}
	return resp.Users, resp.Next, nil
}

// Send sends body to the user to and returns the message as stored, once it
// is committed. A send retried through failover is applied once.
func (c *Client) Send(ctx context.Context, to, body string) (wire.Message, error) {
	var resp wire.SendResponse
	if err := c.do(ctx, wire.OpSend, wire.SendRequest{To: to, Body: body}, &resp); err != nil {
		return wire.Message{}, err
	}
	return resp.Message, nil
}

// Read delivers up to limit queued messages (0: the server's page size),
// oldest first, and marks them delivered.
func (c *Client) Read(ctx context.Context, limit int) ([]wire.Message, error) {
	var resp wire.ReadResponse
	if err := c.do(ctx, wire.OpRead, wire.ReadRequest{Limit: limit}, &resp); err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// History returns one page of the user's messages, sent and received,
// oldest first: those exchanged with with ("" for all), after the cursor
// after (0 to start), and the cursor of the next page (0 after the last).
func (c *Client) History(ctx context.Context, with string, after uint64, limit int) ([]wire.Message, uint64, error) {
	var resp wire.HistoryResponse
	if err := c.do(ctx, wire.OpHistory, wire.HistoryRequest{With: with, After: after, Limit: limit}, &resp); err != nil {
		return nil, 0, err
	}
	return resp.Messages, resp.Next, nil
}

// HistoryLast returns one page of the user's messages from the end of the
// history: the newest limit (0: the server's page size) of those before
// the cursor before (0: from the very end), still oldest first, and the
// cursor of the older page before it (0 when this page starts the
// history). A server older than this op's last field answers with the
// first page instead.
func (c *Client) HistoryLast(ctx context.Context, with string, before uint64, limit int) ([]wire.Message, uint64, error) {
	var resp wire.HistoryResponse
	if err := c.do(ctx, wire.OpHistory, wire.HistoryRequest{With: with, Limit: limit, Last: true, Before: before}, &resp); err != nil {
		return nil, 0, err
	}
	if resp.Next != 0 {
		// Only a page from the beginning has a next cursor.
		return nil, 0, fmt.Errorf("history: %w", ErrHistoryLastUnsupported)
	}
	return resp.Messages, resp.Prev, nil
}

// DeleteMessages deletes the user's messages by id, all or none, and
// returns the ids deleted.
func (c *Client) DeleteMessages(ctx context.Context, ids []uint64) ([]uint64, error) {
	var resp wire.DeleteMessagesResponse
	if err := c.do(ctx, wire.OpDeleteMessages, wire.DeleteMessagesRequest{IDs: ids}, &resp); err != nil {
		return nil, err
	}
	return resp.Deleted, nil
}

// DeleteAccount deletes the logged-in user's account, logs out and returns
// the account's name.
func (c *Client) DeleteAccount(ctx context.Context) (string, error) {
	user := c.User()
	var resp wire.DeleteAccountResponse
	err := c.do(ctx, wire.OpDeleteAccount, wire.DeleteAccountRequest{}, &resp)
	var re *reloginError
	if errors.As(err, &re) && re.err.Code == wire.CodeUnknownUser && re.user == user {
		// The account vanished between our request and a failover: the
		// request was applied before the connection broke (only the owner
		// deletes an account, and this client is the one deleting it).
		resp.User, err = user, nil
	}
	if err != nil {
		return "", err
	}
	c.forgetCredentials()
	return resp.User, nil
}

// Ping checks that the primary answers (connecting to it if needed).
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, wire.OpPing, wire.PingRequest{}, nil)
}
