package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// decodeYAML fills c from raw, walking the YAML tree beside the structs so
// every error names the key path and line ("upstream.timeout: cannot parse
// \"ten\" as a duration (line 3)"), where yaml's own decoder names Go types
// ("cannot unmarshal !!str `ten` into time.Duration"). All problems are
// reported, not the first. An empty file is all defaults.
func decodeYAML(raw []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err // syntax: yaml names the line
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return fmt.Errorf("line %d: a second YAML document; the config is one", next.Line)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return errors.Join(decodeNode(&doc, reflect.ValueOf(c).Elem(), "")...)
}

// decodeNode sets v from n; path is v's key ("" at the top).
func decodeNode(n *yaml.Node, v reflect.Value, path string) []error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) == 0 {
			return nil
		} else {
			n = n.Content[0]
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "key:" with nothing: the default stays
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := n.Decode(u); err != nil {
			return []error{nodeErr(n, path, err.Error())}
		}
		return nil
	}
	switch {
	case isSection(v.Type()):
		return decodeSection(n, v, path)
	case v.Kind() == reflect.Map:
		return decodeMap(n, v, path)
	case v.Kind() == reflect.Slice:
		return decodeList(n, v, path)
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeNode(n, v.Elem(), path)
	}
	if n.Kind != yaml.ScalarNode {
		return []error{nodeErr(n, path, "wants a single value, not a "+nodeKind(n))}
	}
	if err := setScalar(v, n.Value); err != nil {
		return []error{nodeErr(n, path, err.Error())}
	}
	return nil
}

// decodeSection sets struct v's fields from mapping n: an unknown key or one
// given twice is an error naming it.
func decodeSection(n *yaml.Node, v reflect.Value, path string) []error {
	if n.Kind != yaml.MappingNode {
		return []error{nodeErr(n, path, "wants a mapping of keys, not a "+nodeKind(n))}
	}
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, nodeErr(k, join(path, "?"), "a key must be a plain name"))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			errs = append(errs, nodeErr(k, key, fmt.Sprintf("set twice (first on line %d)", line)))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fieldByKey(v, k.Value)
		if !ok {
			errs = append(errs, nodeErr(k, key, unknownKey(v, k.Value)))
			continue
		}
		errs = append(errs, decodeNode(val, f, key)...)
	}
	return errs
}

func unknownKey(v reflect.Value, got string) string {
	var keys []string
	for i := 0; i < v.NumField(); i++ {
		if tag, _ := yamlName(v.Type().Field(i)); tag != "" {
			keys = append(keys, tag)
		}
	}
	if s := suggest(got, keys); s != "" {
		return "unknown key; did you mean " + s + "?"
	}
	return "unknown key"
}

// decodeMap sets map v (string keys) from mapping n, each value at path.key.
func decodeMap(n *yaml.Node, v reflect.Value, path string) []error {
	if n.Kind != yaml.MappingNode || v.Type().Key().Kind() != reflect.String {
		return []error{nodeErr(n, path, "wants a mapping, not a "+nodeKind(n))}
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	var errs []error
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if k.Kind != yaml.ScalarNode || seen[k.Value] {
			errs = append(errs, nodeErr(k, key, "a key must be a plain name, given once"))
			continue
		}
		seen[k.Value] = true
		elem := reflect.New(v.Type().Elem()).Elem()
		if e := decodeNode(val, elem, key); len(e) > 0 {
			errs = append(errs, e...)
			continue
		}
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	return errs
}

// decodeList sets slice v from sequence n, each element at path[i].
func decodeList(n *yaml.Node, v reflect.Value, path string) []error {
	if n.Kind != yaml.SequenceNode {
		return []error{nodeErr(n, path, "wants a list ([a, b]), not a "+nodeKind(n))}
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	var errs []error
	for i, el := range n.Content {
		errs = append(errs, decodeNode(el, out.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
	}
	v.Set(out)
	return errs
}

func nodeErr(n *yaml.Node, path, msg string) error {
	if path == "" {
		path = "(top level)"
	}
	return fmt.Errorf("%s: %s (line %d)", path, msg, n.Line)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value " + short(n.Value)
}
