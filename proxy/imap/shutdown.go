package imap

import "mailgate/proxy"

// DefaultShutdownQuiet is how long the upstream must have sent nothing to a
// relayed client before Shutdown ends the session with BYE.
const DefaultShutdownQuiet = proxy.DefaultShutdownQuiet

// byeText is the untagged BYE of RFC 3501 section 7.1.5: the client knows
// the server is going away and reconnects, instead of reporting an error.
const byeText = "* BYE mailgate shutting down\r\n"
