package config

import (
	"encoding/json"
	"fmt"
	"strings"
)

// resolveSecrets reads the files that hold secrets, so a missing,
// unreadable or unprotected file stops the daemon at start rather than at the
// first login. Messages name the key and the file, never the content.
func (d *doc) resolveSecrets(c *Config) error {
	if err := d.checkKeyFile(c); err != nil {
		return err
	}
	if err := d.readDSN(c); err != nil {
		return err
	}
	o := &c.OAuth
	if o.ClientSecretFile != "" {
		s, err := readSecret(o.ClientSecretFile)
		if err != nil {
			return d.wrap("oauth.client_secret_file", err)
		}
		o.ClientSecret = s
	}
	if o.ServiceAccountFile != "" {
		key, err := readServiceAccount(o.ServiceAccountFile)
		if err != nil {
			return d.wrap("oauth.service_account_file", err)
		}
		o.ServiceAccountKey = key
	}
	return d.resolveWebhookSecret(c)
}

// readSecret returns the file's content without the trailing newline that
// editors and "echo secret > file" add.
func readSecret(path string) (string, error) {
	data, err := readPrivate(path, groupRead)
	if err != nil {
		return "", err // *fs.PathError names the file
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// readServiceAccount reads a Google service account key and checks that it
// holds what a JWT grant needs. json's own errors are not passed on: they can
// quote bytes of the private key.
func readServiceAccount(path string) ([]byte, error) {
	data, err := readPrivate(path, groupRead)
	if err != nil {
		return nil, err
	}
	var key struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if json.Unmarshal(data, &key) != nil {
		return nil, fmt.Errorf("%s is not JSON", path)
	}
	if key.Type != "service_account" || key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, fmt.Errorf("%s is not a service account key (want type service_account, client_email and private_key)", path)
	}
	return data, nil
}
