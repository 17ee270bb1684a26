//! The sandbox signs its webhooks as the gateway checks them. The two crates share no code (the
//! sandbox stands for a provider of its own), and meet only in this binary, so it checks that
//! they agree.

#[test]
fn the_gateway_accepts_what_the_sandbox_signs() {
    assert!(sandbox::SIGNATURE_HEADER.eq_ignore_ascii_case(gateway::webhook::SIGNATURE_HEADER));
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let header = sandbox::sign("whsec_test", 1_000, body);
    assert_eq!(gateway::webhook::verify("whsec_test", &header, body, 1_010, 300), Ok(()));
    assert!(gateway::webhook::verify("another_secret", &header, body, 1_010, 300).is_err());
    assert!(gateway::webhook::verify("whsec_test", &header, b"{}", 1_010, 300).is_err());
}
