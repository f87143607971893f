import CryptoKit
import Foundation
import Security

/// Wraps the Fieldcap device secret with AES-256-GCM under a key kept in the iOS Keychain
/// (this-device-only, available after first unlock so background sync can open the store).
/// The wrapped blob is `0x01 | 12-byte nonce | ciphertext | 16-byte tag`, with the same
/// associated data as the Android protector.
final class KeychainKeyProtector: KeyProtector {
    private let service = "org.fieldcap.device-key-wrap"
    private let account = "v1"
    private let aad = Data("fieldcap.device-key/1".utf8)

    func name() -> String { "ios-keychain-aes-gcm" }

    func wrapSecret(secret: Data) throws -> Data {
        do {
            let box = try AES.GCM.seal(secret, using: try key(), authenticating: aad)
            guard let combined = box.combined else { throw FieldcapError.KeyStore(detail: "sealing failed") }
            return Data([1]) + combined
        } catch let e as FieldcapError {
            throw e
        } catch {
            throw FieldcapError.KeyStore(detail: "wrapping failed")
        }
    }

    func unwrapSecret(wrapped: Data) throws -> Data {
        guard wrapped.first == 1, wrapped.count > 1 + 12 + 16 else {
            throw FieldcapError.KeyStore(detail: "the wrapped key has an unknown format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped.dropFirst())
            return try AES.GCM.open(box, using: try key(), authenticating: aad)
        } catch {
            throw FieldcapError.KeyStore(detail: "unwrapping failed")
        }
    }

    private func key() throws -> SymmetricKey {
        let query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecReturnData as String: true,
        ]
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        if status == errSecSuccess, let data = item as? Data { return SymmetricKey(data: data) }
        guard status == errSecItemNotFound else { throw FieldcapError.KeyStore(detail: "keychain read failed (\(status))") }
        let fresh = SymmetricKey(size: .bits256)
        let add: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
            kSecValueData as String: fresh.withUnsafeBytes { Data($0) },
        ]
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else { throw FieldcapError.KeyStore(detail: "keychain write failed (\(added))") }
        return fresh
    }
}
