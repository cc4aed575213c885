"""Domain events other modules subscribe to (blinker); core sends, modules listen."""

from blinker import Namespace

_signals = Namespace()

# sent with the user that was deactivated; actor=the administrator
user_deactivated = _signals.signal("user-deactivated")
