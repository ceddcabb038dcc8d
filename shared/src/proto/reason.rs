//! Reason codes carried by CONNACK, SENDACK, SUBACK and DISCONNECT.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Unknown = 0,
    Success = 1,
    AuthFail = 2,
    SubscriberNotExist = 3,
    InDenyList = 4,
    ChannelNotExist = 5,
    UserNotOnNode = 6,
    SenderOffline = 7,
    MsgKeyError = 8,
    PayloadDecodeError = 9,
    ForwardError = 10,
    NotAllowSend = 11,
    ConnectKick = 12,
    NotInAllowList = 13,
    QueryTokenError = 14,
    SystemError = 15,
    ChannelIdError = 16,
    NodeMatchError = 17,
    NodeNotMatch = 18,
    Ban = 19,
    NotSupportHeader = 20,
    ClientKeyIsEmpty = 21,
    RateLimit = 22,
    NotSupportChannelType = 23,
    Disband = 24,
    SendBan = 25,
}

impl Reason {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Reason> for u8 {
    fn from(r: Reason) -> u8 {
        r as u8
    }
}
