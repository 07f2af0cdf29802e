"""How the console words a WhatsApp channel's state for a person."""

# Every channel detail the backend sends (the enum of `detail` in its API schema; a test keeps the two in step).
DETAILS = {
    "starting": "Starting the WhatsApp session…",
    "scan_qr": "Waiting for the QR code to be scanned.",
    "passkey": "WhatsApp asks for the phone's passkey: confirm it on the phone.",
    "working": "Connected.",
    "failed": "The session failed.",
    "logged_out": "Logged out from the phone.",
    "stopped": "The session is stopped.",
    "qr_expired": "The QR code expired before it was scanned.",
    "closed": "WhatsApp closed the connection.",
    "gateway_error": "The WhatsApp gateway could not be reached or refused the request.",
    "number_conflict": "This number is already linked to another assistant.",
    "unknown": "The WhatsApp gateway reported a state this version does not know.",
}
