package notify

import "os"

// getenv is os.Getenv; the only environment the package reads is
// DBUS_SYSTEM_BUS_ADDRESS, as every D-Bus client does.
func getenv(k string) string { return os.Getenv(k) }
