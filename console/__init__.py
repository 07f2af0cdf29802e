"""The operator console: a Streamlit app that talks to the backend only over its HTTP API."""
