package org.fieldcap.app.portable

import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import org.fieldcap.core.FieldcapException
import org.fieldcap.core.KeyProtector

/**
 * Wraps the Fieldcap device secret with AES-256-GCM under a key the platform holds.
 *
 * On Android the key comes from the Android Keystore (hardware-backed where the phone has it, the
 * key material never leaves it; see `KeystoreKeys` in the app); in the JVM tests it is a software
 * key. This file touches no Android API so that the JVM test compiles and runs exactly this code.
 *
 * Wrapped format (stored by the core as-is): `0x01 | 12-byte IV | ciphertext | 16-byte tag`.
 * The associated data binds the blob to its purpose, so it cannot be swapped for another
 * AES-GCM blob made with the same key.
 */
class AesGcmKeyProtector(
    private val protectorName: String,
    private val key: () -> SecretKey,
    /** Android Keystore keys generate their own IV; pass false there. */
    private val callerSuppliesIv: Boolean = true,
) : KeyProtector {
    override fun name(): String = protectorName

    override fun wrapSecret(secret: ByteArray): ByteArray {
        try {
            val cipher = Cipher.getInstance(TRANSFORMATION)
            if (callerSuppliesIv) {
                val iv = ByteArray(IV_LEN).also { SecureRandom().nextBytes(it) }
                cipher.init(Cipher.ENCRYPT_MODE, key(), GCMParameterSpec(TAG_BITS, iv))
            } else {
                cipher.init(Cipher.ENCRYPT_MODE, key())
            }
            cipher.updateAAD(AAD)
            val iv = cipher.iv
            require(iv.size == IV_LEN) { "unexpected IV length" }
            val sealed = cipher.doFinal(secret)
            return byteArrayOf(VERSION) + iv + sealed
        } catch (e: Exception) {
            throw FieldcapException.KeyStore("wrapping failed: ${e.javaClass.simpleName}")
        } finally {
            secret.fill(0)
        }
    }

    override fun unwrapSecret(wrapped: ByteArray): ByteArray {
        if (wrapped.size < 1 + IV_LEN + TAG_BITS / 8 || wrapped[0] != VERSION) {
            throw FieldcapException.KeyStore("the wrapped key has an unknown format")
        }
        try {
            val cipher = Cipher.getInstance(TRANSFORMATION)
            val iv = wrapped.copyOfRange(1, 1 + IV_LEN)
            cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(TAG_BITS, iv))
            cipher.updateAAD(AAD)
            return cipher.doFinal(wrapped, 1 + IV_LEN, wrapped.size - 1 - IV_LEN)
        } catch (e: Exception) {
            throw FieldcapException.KeyStore("unwrapping failed: ${e.javaClass.simpleName}")
        }
    }

    companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_LEN = 12
        const val TAG_BITS = 128
        const val VERSION: Byte = 1
        val AAD = "fieldcap.device-key/1".toByteArray()
    }
}
