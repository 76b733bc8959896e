package translate

// BasePath is the collection path of a side's credentials: a fact of the
// dialect, so the clients toward a primary (upstream) and a secondary
// (migrate) share it.
func BasePath(s Side) string {
	switch s {
	case SideOscred:
		return "/v3.0/OS-CREDENTIAL/credentials"
	case SideKeystone:
		return "/v3/credentials"
	}
	return "/credentials"
}
