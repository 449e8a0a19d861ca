-- Trusted MPTCP for Wireshark and tshark: ADDR_TRUST and the T flag of ADD_ADDR, in the
-- testbed's wire format version 2 (docs/wire-format.md; draft-hewu-mptcp-trust-00).
--
-- A postdissector: Wireshark's own MPTCP dissector keeps decoding every option (its
-- fields, such as tcp.options.mptcp.subtype, stay as they are), and this one adds a
-- "Trusted MPTCP" tree for what it does not know. It reads the TCP options the TCP
-- dissector found, so it sees exactly the bytes Wireshark shows. Nothing here trusts a
-- length it has not checked: malformed options get an expert note, never a Lua error.
--
-- Installed by scripts/install.sh into tshark's global Lua plugin folder. The ADDR_TRUST
-- subtype follows the agents' --addr-trust-subtype through a preference:
--   tshark -o tmptcp.addr_trust_subtype:12 -r capture.pcap -Y tmptcp.addr_trust

local proto = Proto("tmptcp", "Trusted MPTCP")

local KIND_MPTCP = 30
local SUBTYPE_ADD_ADDR = 3
local ADDR_TRUST_LENGTH = 18

proto.prefs.addr_trust_subtype = Pref.uint(
    "ADDR_TRUST subtype",
    9,
    "The MPTCP subtype of ADDR_TRUST: the agents' --addr-trust-subtype (9 to 15)"
)

local MESSAGES = {
    [0] = "notification",
    [1] = "answer",
    [2] = "withdrawal",
    [3] = "invalid (E and W both set)",
}

-- ADD_ADDR lengths (RFC 8684 3.4.1) -> IP version, port present, HMAC present
local ADD_ADDR_SHAPES = {
    [8] = { 4, false, false },
    [10] = { 4, true, false },
    [16] = { 4, false, true },
    [18] = { 4, true, true },
    [20] = { 6, false, false },
    [22] = { 6, true, false },
    [28] = { 6, false, true },
    [30] = { 6, true, true },
}

local pf = {
    addr_trust = ProtoField.none("tmptcp.addr_trust", "ADDR_TRUST"),
    length = ProtoField.uint8("tmptcp.addr_trust.length", "Length"),
    subtype = ProtoField.uint8("tmptcp.addr_trust.subtype", "Subtype", base.DEC, nil, 0xf0),
    reserved = ProtoField.uint8("tmptcp.addr_trust.reserved", "Reserved", base.HEX, nil, 0x0c),
    withdraw = ProtoField.bool("tmptcp.addr_trust.withdraw", "W (withdrawal)", 8, nil, 0x02),
    echo = ProtoField.bool("tmptcp.addr_trust.echo", "E (answer)", 8, nil, 0x01),
    message = ProtoField.string("tmptcp.addr_trust.message", "Message"),
    addr_id = ProtoField.uint8("tmptcp.addr_trust.addr_id", "Address ID"),
    counter = ProtoField.uint32("tmptcp.addr_trust.counter", "Counter"),
    lifetime = ProtoField.uint16("tmptcp.addr_trust.lifetime", "Lifetime (s)"),
    hmac = ProtoField.bytes("tmptcp.addr_trust.hmac", "Truncated HMAC"),
    ipv4 = ProtoField.ipv4("tmptcp.addr_trust.ipv4", "Address"),
    ipv6 = ProtoField.ipv6("tmptcp.addr_trust.ipv6", "Address"),
    named_in = ProtoField.framenum("tmptcp.addr_trust.named_in", "Address named in frame"),
    add_addr = ProtoField.none("tmptcp.add_addr", "ADD_ADDR"),
    trust = ProtoField.bool("tmptcp.add_addr.trust", "T (Trust)", 8, nil, 0x02),
    add_echo = ProtoField.bool("tmptcp.add_addr.echo", "E (echo)", 8, nil, 0x01),
    add_id = ProtoField.uint8("tmptcp.add_addr.addr_id", "Address ID"),
    add_ipv4 = ProtoField.ipv4("tmptcp.add_addr.ipv4", "Address"),
    add_ipv6 = ProtoField.ipv6("tmptcp.add_addr.ipv6", "Address"),
    add_port = ProtoField.uint16("tmptcp.add_addr.port", "Port"),
    add_hmac = ProtoField.bytes("tmptcp.add_addr.hmac", "Truncated HMAC"),
}
local pf_list = {}
for _, field in pairs(pf) do
    pf_list[#pf_list + 1] = field
end
proto.fields = pf_list

local ex = {
    malformed = ProtoExpert.new(
        "tmptcp.malformed", "Malformed Trusted MPTCP option", expert.group.MALFORMED, expert.severity.ERROR
    ),
    both = ProtoExpert.new(
        "tmptcp.echo_and_withdraw", "E and W both set: receivers refuse it", expert.group.PROTOCOL, expert.severity.WARN
    ),
    reserved = ProtoExpert.new(
        "tmptcp.reserved", "Reserved bits set", expert.group.PROTOCOL, expert.severity.NOTE
    ),
    unresolved = ProtoExpert.new(
        "tmptcp.withdrawn_unknown",
        "Withdrawn address not named earlier in this capture (only its Address ID is on the wire)",
        expert.group.SEQUENCE,
        expert.severity.NOTE
    ),
}
proto.experts = { ex.malformed, ex.both, ex.reserved, ex.unresolved }

local f_options = Field.new("tcp.options")
local f_ip_src = Field.new("ip.src")
local f_ip_dst = Field.new("ip.dst")
local f_ipv6_src = Field.new("ipv6.src")
local f_ipv6_dst = Field.new("ipv6.dst")

-- Withdrawals carry only an Address ID: the address is the one the sender's earlier
-- notifications with that ID came from. Keyed by the receiver and the ID (the withdrawal
-- travels from another of the sender's addresses); filled on the first pass only, so a
-- later click in Wireshark shows what the first pass saw.
local named = {}
local resolved = {}

function proto.init()
    named = {}
    resolved = {}
end

local function last(extractor)
    local all = { extractor() }
    return all[#all]
end

-- The addresses of the IP header that carries the TCP segment (the innermost one).
local function segment_addresses()
    local src, dst = last(f_ipv6_src), last(f_ipv6_dst)
    local v4src, v4dst = last(f_ip_src), last(f_ip_dst)
    if v4src ~= nil and (src == nil or v4src.offset > src.offset) then
        return v4src, v4dst
    end
    return src, dst
end

local function add_address(tree, field4, field6, address)
    if address == nil then
        return nil
    end
    local field = (address.len == 4) and field4 or field6
    local item = tree:add(field, address.range)
    item:set_generated()
    return item
end

local function addr_trust(tree, opt, pinfo)
    local t = tree:add(pf.addr_trust, opt)
    t:add(pf.length, opt(1, 1))
    if opt:len() ~= ADDR_TRUST_LENGTH then
        t:add_proto_expert_info(ex.malformed, "ADDR_TRUST is 18 octets, this one " .. opt:len())
        return
    end
    local flags = opt(2, 1)
    local echo, withdraw = flags:bitfield(7, 1), flags:bitfield(6, 1)
    t:add(pf.subtype, flags)
    t:add(pf.reserved, flags)
    t:add(pf.withdraw, flags)
    t:add(pf.echo, flags)
    if flags:bitfield(4, 2) ~= 0 then
        t:add_proto_expert_info(ex.reserved)
    end
    local message = MESSAGES[withdraw * 2 + echo]
    local m = t:add(pf.message, message)
    m:set_generated()
    if echo == 1 and withdraw == 1 then
        m:add_proto_expert_info(ex.both)
    end
    local id = opt(3, 1):uint()
    t:add(pf.addr_id, opt(3, 1))
    t:add(pf.counter, opt(4, 4))
    t:add(pf.lifetime, opt(8, 2))
    t:add(pf.hmac, opt(10, 8))

    local src, dst = segment_addresses()
    local receiver = dst and tostring(dst.value) or "?"
    local key = receiver .. "|" .. id
    if withdraw == 0 then
        -- The address a notification or answer speaks of is the segment's source.
        add_address(t, pf.ipv4, pf.ipv6, src)
        if not pinfo.visited and src ~= nil then
            -- Field values expire with the packet: keep the text.
            named[key] = { address = tostring(src.value), v6 = src.len == 16, frame = pinfo.number }
        end
    else
        if not pinfo.visited then
            resolved[pinfo.number] = named[key]
        end
        local earlier = resolved[pinfo.number]
        if earlier ~= nil then
            -- The bytes are that frame's: show the value without a range.
            if earlier.v6 then
                t:add(pf.ipv6, Address.ipv6(earlier.address)):set_generated()
            else
                t:add(pf.ipv4, Address.ip(earlier.address)):set_generated()
            end
            t:add(pf.named_in, earlier.frame):set_generated()
        else
            t:add_proto_expert_info(ex.unresolved)
        end
    end
    t:append_text(string.format(": %s, ID %d, counter %d, lifetime %d s", message, id,
        opt(4, 4):uint(), opt(8, 2):uint()))
    pinfo.cols.info:append(string.format(" [ADDR_TRUST %s id=%d]", message, id))
end

local function add_addr(tree, opt, pinfo)
    local t = tree:add(pf.add_addr, opt)
    local shape = ADD_ADDR_SHAPES[opt:len()]
    if shape == nil then
        t:add_proto_expert_info(ex.malformed, "no ADD_ADDR is " .. opt:len() .. " octets")
        return
    end
    local version, has_port, has_hmac = shape[1], shape[2], shape[3]
    local flags = opt(2, 1)
    t:add(pf.trust, flags)
    t:add(pf.add_echo, flags)
    t:add(pf.add_id, opt(3, 1))
    local size = (version == 4) and 4 or 16
    t:add((version == 4) and pf.add_ipv4 or pf.add_ipv6, opt(4, size))
    local at = 4 + size
    if has_port then
        t:add(pf.add_port, opt(at, 2))
        at = at + 2
    end
    if has_hmac then
        t:add(pf.add_hmac, opt(at, 8))
    end
    local trust = flags:bitfield(6, 1)
    t:append_text(trust == 1 and ": T=1, the T-HMAC (label \"tmptcp add-addr-t v2\")" or ": T=0")
    if trust == 1 then
        pinfo.cols.info:append(" [T-ADD_ADDR]")
    end
end

function proto.dissector(tvb, pinfo, tree)
    local subtype = proto.prefs.addr_trust_subtype
    if subtype < 9 or subtype > 15 then
        subtype = nil -- the agents refuse other values; decode ADD_ADDR only
    end
    for _, options in ipairs({ f_options() }) do
        local r = options.range
        local n, at, root = r:len(), 0, nil
        while at < n do
            local kind = r(at, 1):uint()
            if kind == 0 then
                break
            elseif kind == 1 then
                at = at + 1
            else
                -- The TCP dissector reports bad lengths; stop where it would.
                if at + 1 >= n then
                    break
                end
                local len = r(at + 1, 1):uint()
                if len < 2 or at + len > n then
                    break
                end
                if kind == KIND_MPTCP and len >= 3 then
                    local opt = r(at, len)
                    local this = opt(2, 1):bitfield(0, 4)
                    if this == subtype or this == SUBTYPE_ADD_ADDR then
                        root = root or tree:add(proto, r)
                        if this == subtype then
                            addr_trust(root, opt, pinfo)
                        else
                            add_addr(root, opt, pinfo)
                        end
                    end
                end
                at = at + len
            end
        end
    end
end

register_postdissector(proto)
