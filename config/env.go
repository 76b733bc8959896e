package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/credbridge/credbridge/policy"
)

// EnvPrefix starts every override variable: CREDBRIDGE_ + the key's path in
// upper case, dots as "_" (CREDBRIDGE_UPSTREAM_URL).
const EnvPrefix = "CREDBRIDGE_"

// EnvConfig names the config file; it is no key.
const EnvConfig = "CREDBRIDGE_CONFIG"

// serviceLink matches the variables Kubernetes puts in every pod of a
// namespace for each Service (enableServiceLinks, on by default): a Service
// named credbridge or credbridge-admin yields CREDBRIDGE_SERVICE_HOST,
// CREDBRIDGE_ADMIN_PORT_9090_TCP_ADDR and so on. They are not typos, and
// refusing them would stop the gateway from starting beside its own Service.
var serviceLink = regexp.MustCompile(`^CREDBRIDGE_([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// EnvName is the variable that overrides key (a dotted path).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv sets fields from CREDBRIDGE_<PATH> variables in environ
// (os.Environ() form); lists are comma-separated. A CREDBRIDGE_ variable that
// names no key is an error naming it: a misspelt override must not pass
// silently and leave the file's value in force.
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) && k != EnvConfig {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var errs, known []string
	eachKey(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		for _, name := range envNames(key) {
			known = append(known, name)
			val, ok := env[name]
			if !ok {
				continue
			}
			delete(env, name)
			if err := setEnv(f, name, val); err != nil {
				errs = append(errs, fmt.Sprintf("%s (%s): %v", name, key, err))
			}
		}
	})
	for name := range env {
		if serviceLink.MatchString(name) { // only after the keys took theirs
			continue
		}
		msg := name + ": no such setting"
		if s := suggest(name, known); s != "" {
			msg += "; did you mean " + s + "?"
		}
		errs = append(errs, msg)
	}
	sort.Strings(errs) // map order must not decide the message
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = errors.New(e)
	}
	return errors.Join(out...)
}

// envNames are the variables that set key: one, or for policy.rules one per
// operation (CREDBRIDGE_POLICY_RULES_UPDATE).
func envNames(key string) []string {
	if key != "policy.rules" {
		return []string{EnvName(key)}
	}
	names := make([]string, len(policy.Actions))
	for i, op := range policy.Actions {
		names[i] = EnvName(key + "." + op)
	}
	return names
}

func setEnv(f reflect.Value, name, val string) error {
	switch {
	case f.Kind() == reflect.Map && f.Type().Elem().Kind() == reflect.Slice:
		if f.IsNil() {
			f.Set(reflect.MakeMap(f.Type()))
		}
		op := strings.ToLower(name[strings.LastIndexByte(name, '_')+1:])
		f.SetMapIndex(reflect.ValueOf(op), reflect.ValueOf(splitList(val)))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		f.Set(reflect.ValueOf(splitList(val)))
	default:
		return setScalar(f, val)
	}
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
