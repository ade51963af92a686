package rx

// User is who a subscription or action acts for. The zero value is an
// anonymous user.
type User struct {
	// ID identifies the user. Per-user rows are delivered to a user whose ID
	// equals the row's owner field in its canonical string form (decimal for
	// integers). Empty means anonymous.
	ID string
	// Data is the application's own user value (for example *models.User),
	// set by the authenticator and free for hooks and actions to use.
	Data any
}

// Anonymous reports whether u carries no identity.
func (u User) Anonymous() bool { return u.ID == "" }
