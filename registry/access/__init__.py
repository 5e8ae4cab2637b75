"""Who may do what: principals (Handle-style ``index:handle`` identities) and the one
access policy every use case asks. Pure domain: no I/O."""
