// Command caddy is Caddy with its standard modules and two_factor: the
// binary `xcaddy build --with github.com/caddy-two-factor/caddy-two-factor`
// produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-two-factor/caddy-two-factor"
)

func main() {
	caddycmd.Main()
}
