package keystone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// direct opens a connection per call: uwsgi closes each after its answer, and
// net/http would not resend a POST that met a closed one.
var direct = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}

// makeUsers logs the admin in and makes Alice and Bob, each with a project of
// their own and the member role on it, and a token for each.
func (k *Keystone) makeUsers() error {
	var err error
	if k.Admin.Token, k.Admin.ProjectID, k.Admin.ID, err = k.login("admin", k.Admin.Password, "admin"); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	var roles struct {
		Roles []struct{ ID string } `json:"roles"`
	}
	if err := k.api("GET", "/v3/roles?name=member", k.Admin.Token, nil, http.StatusOK, &roles); err != nil || len(roles.Roles) != 1 {
		return fmt.Errorf("role member: %v (%d found)", err, len(roles.Roles))
	}
	errs := make(chan error, 2)
	go func() { errs <- k.makeUser(&k.Alice, "alice", roles.Roles[0].ID) }()
	go func() { errs <- k.makeUser(&k.Bob, "bob", roles.Roles[0].ID) }()
	return errors.Join(<-errs, <-errs)
}

func (k *Keystone) makeUser(u *User, name, memberRole string) error {
	u.Name, u.Password = name, randomPassword()
	var p struct{ Project struct{ ID string } }
	if err := k.api("POST", "/v3/projects", k.Admin.Token, map[string]any{"project": map[string]any{
		"name": name + "-project", "domain_id": "default"}}, http.StatusCreated, &p); err != nil {
		return fmt.Errorf("project of %s: %w", name, err)
	}
	var us struct{ User struct{ ID string } }
	if err := k.api("POST", "/v3/users", k.Admin.Token, map[string]any{"user": map[string]any{
		"name": name, "domain_id": "default", "password": u.Password, "default_project_id": p.Project.ID}},
		http.StatusCreated, &us); err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	u.ID, u.ProjectID = us.User.ID, p.Project.ID
	if err := k.api("PUT", "/v3/projects/"+u.ProjectID+"/users/"+u.ID+"/roles/"+memberRole, k.Admin.Token, nil,
		http.StatusNoContent, nil); err != nil {
		return fmt.Errorf("member role for %s: %w", name, err)
	}
	tok, _, _, err := k.login(name, u.Password, name+"-project")
	if err != nil {
		return fmt.Errorf("%s login: %w", name, err)
	}
	u.Token = tok
	return nil
}

// login gets a token scoped to project (by name, default domain).
func (k *Keystone) login(name, password, project string) (token, projectID, userID string, err error) {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": name, "domain": map[string]any{"id": "default"}, "password": password}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}}}}
	raw, _ := json.Marshal(body)
	resp, err := direct.Post(k.URL+"/v3/auth/tokens?nocatalog=1", "application/json", bytes.NewReader(raw))
	if err != nil {
		return "", "", "", err
	}
	defer resp.Body.Close()
	var t struct {
		Token struct {
			User    struct{ ID string } `json:"user"`
			Project struct{ ID string } `json:"project"`
		} `json:"token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &t) != nil {
		return "", "", "", fmt.Errorf("answered %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Subject-Token"), t.Token.Project.ID, t.Token.User.ID, nil
}

// Login gets a fresh project-scoped token for u.
func (k *Keystone) Login(u User) (string, error) {
	tok, _, _, err := k.login(u.Name, u.Password, map[bool]string{true: "admin", false: u.Name + "-project"}[u.Name == "admin"])
	return tok, err
}

// api calls Keystone directly (not through the bridge) and decodes the answer into out.
func (k *Keystone) api(method, path, token string, in any, want int, out any) error {
	var rd io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, k.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := direct.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s answered %d", method, path, resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// AdminStatus is the status Keystone answers the admin's GET of path: the
// tests' look behind the bridge.
func (k *Keystone) AdminStatus(path string) (int, error) {
	req, err := http.NewRequest("GET", k.URL+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", k.Admin.Token)
	resp, err := direct.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
