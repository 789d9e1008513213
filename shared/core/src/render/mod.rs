//! Rendering verdicts for people: Slack Block Kit, SNS (subject, e-mail
//! body, attributes) and terminal text. Escaping and limits live here, once.
