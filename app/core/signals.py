"""Domain events other modules subscribe to (blinker); core sends, modules listen."""

from blinker import Namespace

_signals = Namespace()

# sent with the user that was deactivated; actor=the administrator
user_deactivated = _signals.signal("user-deactivated")

# sent with the new Assignment when a person starts holding a post
post_holder_added = _signals.signal("post-holder-added")

# sent with the ended Assignment when a person stops holding a post
post_holder_removed = _signals.signal("post-holder-removed")

# sent with a mail Message copied to an external address; address=the e-mail address
message_sent_external = _signals.signal("message-sent-external")

# sent with a clients Deal when it enters a won stage; actor=who moved it
deal_won = _signals.signal("deal-won")
